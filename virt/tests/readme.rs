//! The README's CLI section and `kv-virt --help` describe the same tool:
//! every flag of every subcommand appears in the section, and every flag
//! the section names exists.

use std::collections::BTreeSet;
use std::path::Path;

use clap::CommandFactory;
use kv_virt::cli::Cli;

/// The README's "## The CLI" section.
fn cli_section() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let start = readme
        .find("\n## The CLI\n")
        .expect("README has a section \"## The CLI\"");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    rest[..end].to_string()
}

/// Every long flag (`--name`) of the command and its subcommands, and
/// every value of its backend argument.
fn flags(command: &clap::Command, out: &mut BTreeSet<String>) {
    for arg in command.get_arguments() {
        if let Some(long) = arg.get_long() {
            out.insert(format!("--{long}"));
        }
    }
    for sub in command.get_subcommands() {
        flags(sub, out);
    }
}

/// The `--flags` a text names.
fn named_flags(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (i, _) in text.match_indices("--") {
        let name: String = text[i + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let before = text[..i].chars().last();
        let starts_a_name = name.starts_with(|c: char| c.is_ascii_alphanumeric());
        if starts_a_name && before.is_none_or(|c| !c.is_ascii_alphanumeric() && c != '-') {
            found.insert(format!("--{name}"));
        }
    }
    found
}

#[test]
fn the_readme_names_every_flag_and_no_other() {
    let mut help = BTreeSet::new();
    flags(&Cli::command(), &mut help);
    help.remove("--help");
    help.remove("--version");
    let section = cli_section();
    let mut documented = named_flags(&section);
    documented.remove("--help");
    let undocumented: Vec<_> = help.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&help).collect();
    assert!(
        undocumented.is_empty(),
        "flags in --help missing from the README's CLI section: {undocumented:?}"
    );
    assert!(
        unknown.is_empty(),
        "flags in the README's CLI section that kv-virt does not have: {unknown:?}"
    );
}

#[test]
fn the_readme_names_every_backend() {
    let section = cli_section();
    let command = Cli::command();
    let adapter = command.find_subcommand("adapter").unwrap();
    let backend = adapter
        .get_arguments()
        .find(|arg| arg.get_id() == "backend")
        .unwrap();
    for value in backend.get_possible_values() {
        let name = value.get_name();
        assert!(
            section.contains(&format!("`{name}`")),
            "backend {name} is not in the README's CLI section"
        );
    }
}
