//! Baking a configuration into an adapter: a generated component exports
//! `kv-virt:config/config` and returns the bytes; `wac-graph` plugs it into
//! the adapter's import. No binary patching.

use anyhow::{Context, Result, bail};
use wasm_encoder::{
    CodeSection, ConstExpr, DataSection, ExportKind, ExportSection, Function, FunctionSection, Instruction,
    MemorySection, MemoryType, Module, TypeSection, ValType,
};
use wit_parser::Resolve;

use crate::inspect::{GetManyShape, inspect_named, one_line};
use crate::plug::connect;
use crate::{CONFIG_INTERFACE, DRAFT2_BATCH, DRAFT2_BATCH_2024};

const CONFIG_WIT: &str = include_str!("../../wit/deps/kv-virt-config/config.wit");

/// Where the generated module keeps `get`'s return area (pointer, length)
/// and the bytes themselves.
const RETURN_AREA: i32 = 8;
const BYTES_AT: i32 = 16;

/// A component exporting `kv-virt:config/config` whose `get` returns `config`.
pub fn config_provider(config: &[u8]) -> Result<Vec<u8>> {
    let mut resolve = Resolve::default();
    let package = resolve.push_str("config.wit", CONFIG_WIT)?;
    let world = resolve.select_world(&[package], Some("provider"))?;
    crate::encode_component(provider_module(config)?, &resolve, world)
        .context("encoding the configuration component")
}

/// A core module whose one function returns a pointer to (pointer, length)
/// of a data segment holding `config`.
fn provider_module(config: &[u8]) -> Result<Vec<u8>> {
    let len = u32::try_from(config.len()).context("configuration is over 4 GiB")?;
    let mut types = TypeSection::new();
    types.ty().function([], [ValType::I32]);
    let mut functions = FunctionSection::new();
    functions.function(0);
    let mut memories = MemorySection::new();
    memories.memory(MemoryType {
        minimum: (BYTES_AT as u64 + u64::from(len)).div_ceil(65536).max(1),
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    let mut exports = ExportSection::new();
    exports.export("memory", ExportKind::Memory, 0);
    exports.export(&format!("{CONFIG_INTERFACE}#get"), ExportKind::Func, 0);
    let mut code = CodeSection::new();
    let mut get = Function::new([]);
    get.instruction(&Instruction::I32Const(RETURN_AREA));
    get.instruction(&Instruction::End);
    code.function(&get);
    let mut return_area = BYTES_AT.to_le_bytes().to_vec();
    return_area.extend_from_slice(&len.to_le_bytes());
    let mut data = DataSection::new();
    data.active(0, &ConstExpr::i32_const(RETURN_AREA), return_area);
    data.active(0, &ConstExpr::i32_const(BYTES_AT), config.iter().copied());
    let mut module = Module::new();
    module
        .section(&types)
        .section(&functions)
        .section(&memories)
        .section(&exports)
        .section(&code)
        .section(&data);
    Ok(module.finish())
}

/// Bakes `config` into any component that imports `kv-virt:config/config`
/// (kv-virt's export and import commands read their settings so): the
/// result exports what it exports and no longer imports that interface.
pub fn bake_config(component: &[u8], config: &[u8]) -> Result<Vec<u8>> {
    let info = inspect_named(component, "the component")?;
    if !info.imports_interface(CONFIG_INTERFACE) {
        bail!("the component does not import {CONFIG_INTERFACE}");
    }
    let exports: Vec<(String, String)> = info
        .exports
        .iter()
        .map(|e| (e.name.clone(), e.name.clone()))
        .collect();
    provide_config(component, config, &exports)
}

/// `component` with a [`config_provider`] of `config` plugged into its
/// `kv-virt:config/config` import, exporting `exports` (export, as name).
fn provide_config(component: &[u8], config: &[u8], exports: &[(String, String)]) -> Result<Vec<u8>> {
    let config_import = [(CONFIG_INTERFACE.to_string(), CONFIG_INTERFACE.to_string())];
    connect(&config_provider(config)?, component, &config_import, exports)
        .map_err(|e| anyhow::anyhow!("baking the configuration: {}", one_line(&e)))
}

/// Bakes `config` into an unconfigured adapter: the result exports what the
/// adapter exports and no longer imports `kv-virt:config/config`. The
/// bytes are also kept in a custom section ([`crate::baked_configs`]).
///
/// `draft2_get_many` is the shape its `wasi:keyvalue/batch@0.2.0-draft2`
/// export has, for `wac plug`, which connects by name: PR #55's (the
/// adapter's own export of that name, beside which the 2024 shape stays
/// exported as [`DRAFT2_BATCH_2024`] for `kv-virt plug`), or the 2024 text's
/// (that export, under the wasi name).
pub fn configure(adapter: &[u8], config: &[u8], draft2_get_many: GetManyShape) -> Result<Vec<u8>> {
    let info = inspect_named(adapter, "the adapter")?;
    if !info.imports_interface(CONFIG_INTERFACE) {
        bail!("the adapter does not import {CONFIG_INTERFACE}: it is not an unconfigured kv-virt adapter");
    }
    let mut exports: Vec<(String, String)> = info
        .exports
        .iter()
        .map(|e| (e.name.clone(), e.name.clone()))
        .collect();
    match draft2_get_many {
        GetManyShape::Pr55 => {}
        GetManyShape::Text2024 => {
            exports.retain(|(name, _)| name != DRAFT2_BATCH && name != DRAFT2_BATCH_2024);
            exports.push((DRAFT2_BATCH_2024.into(), DRAFT2_BATCH.into()));
        }
        GetManyShape::Other => {
            bail!("a configured adapter exports draft2's get-many in PR #55's shape or the 2024 text's")
        }
    }
    let configured = provide_config(adapter, config, &exports)?;
    // Also where `kv-virt inspect` finds it.
    Ok(crate::baked::append_section(configured, config))
}
