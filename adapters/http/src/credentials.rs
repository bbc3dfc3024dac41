//! Credentials, resolved at run time. The configuration names them ("password")
//! and says where each comes from: an environment variable of the running
//! component (`wasi:cli/environment`), so the secret never enters the
//! composed component, or a value baked in on explicit request.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use kv_core::config::Secret;
use kv_core::{Error, Result};

pub struct Credentials {
    service: &'static str,
    entries: Vec<(String, Secret)>,
}

impl Credentials {
    pub fn new(service: &'static str, entries: &[(String, Secret)]) -> Self {
        Credentials {
            service,
            entries: entries.to_vec(),
        }
    }

    /// The credential called `name`, if the configuration has one.
    pub fn get(&self, name: &str) -> Result<Option<String>> {
        let Some((_, secret)) = self.entries.iter().find(|(n, _)| n == name) else {
            return Ok(None);
        };
        match secret {
            Secret::Baked(value) => Ok(Some(value.clone())),
            Secret::Env(variable) => wasip2::cli::environment::get_environment()
                .into_iter()
                .find(|(k, _)| k == variable)
                .map(|(_, value)| Some(value))
                .ok_or_else(|| {
                    Error::other(format!(
                        "{}: the {name} is read from the environment variable {variable}, which is not set \
                         (give it to the runtime, e.g. `wasmtime run --env {variable}=…`)",
                        self.service
                    ))
                }),
        }
    }

    /// The credential called `name`; an error if the configuration has none.
    pub fn require(&self, name: &str) -> Result<String> {
        self.get(name)?.ok_or_else(|| {
            Error::other(format!(
                "{}: the configuration gives no {name} (kv-virt … --credential {name}=env:VARIABLE)",
                self.service
            ))
        })
    }
}
