// Runs a WASI 0.2 command component on Node through jco, with the host
// directories it may use, the way `kv-run` and `wasmtime run` do:
//
//   node tests/node/run.mjs [--dir HOST::GUEST]... [--env NAME=VALUE]... component.wasm [-- ARGS...]
//
// The component is transpiled with jco once (cached by content hash under
// tests/node/.transpiled, where the transpiled module finds this folder's
// node_modules) and runs on @bytecodealliance/preview2-shim. The guest gets
// only the given directories, variables and arguments: the shim's defaults
// would hand it none of the directories and all of Node's environment.
// Exit status: the guest's (0, or 1 for an error exit), 1 if it traps.

import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";

import { transpile } from "@bytecodealliance/jco";
import { _setArgs, _setEnv } from "@bytecodealliance/preview2-shim/cli";
import { _addPreopen, _clearPreopens } from "@bytecodealliance/preview2-shim/filesystem";

const usage = "usage: node run.mjs [--dir HOST::GUEST]... [--env NAME=VALUE]... component.wasm [-- ARGS...]";

function fail(message) {
    console.error(`run.mjs: ${message}`);
    process.exit(2);
}

function parseArgs(argv) {
    const options = { dirs: [], env: {}, component: undefined, args: [] };
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i];
        if (arg === "--") {
            options.args = argv.slice(i + 1);
            break;
        }
        if (arg === "--dir" || arg === "--env") {
            const value = argv[++i];
            if (value === undefined) fail(`${arg} needs a value\n${usage}`);
            if (arg === "--dir") {
                const [host, guest] = value.includes("::") ? value.split("::", 2) : [value, value];
                if (!existsSync(host)) fail(`--dir ${value}: ${host} does not exist`);
                options.dirs.push([resolve(host), guest]);
            } else {
                const eq = value.indexOf("=");
                if (eq < 1) fail(`--env ${value}: expected NAME=VALUE`);
                options.env[value.slice(0, eq)] = value.slice(eq + 1);
            }
        } else if (options.component === undefined && !arg.startsWith("-")) {
            options.component = arg;
        } else {
            fail(`unexpected argument ${arg}\n${usage}`);
        }
    }
    if (options.component === undefined) fail(`no component given\n${usage}`);
    return options;
}

/** Transpiles the component (once per content) and returns its module's path. */
async function transpiled(componentPath) {
    const bytes = await readFile(componentPath).catch((e) => fail(`reading ${componentPath}: ${e.message}`));
    const hash = createHash("sha256").update(bytes).digest("hex").slice(0, 32);
    const cache = join(dirname(fileURLToPath(import.meta.url)), ".transpiled");
    const dir = join(cache, hash);
    const module = join(dir, "component.js");
    if (existsSync(module)) return module;
    let files;
    try {
        ({ files } = await transpile(bytes, { name: "component", noTypescript: true, quiet: true }));
    } catch (e) {
        fail(`transpiling ${componentPath} with jco: ${e.message ?? e}`);
    }
    // Written aside and renamed, so runs in parallel never see half a module.
    const partial = `${dir}.${process.pid}.partial`;
    for (const [name, contents] of Object.entries(files)) {
        await mkdir(dirname(join(partial, name)), { recursive: true });
        await writeFile(join(partial, name), contents);
    }
    await rename(partial, dir).catch(async (e) => {
        await rm(partial, { recursive: true, force: true });
        // Another run renamed the same transpilation into place first.
        if (!existsSync(module)) throw e;
    });
    return module;
}

const options = parseArgs(process.argv.slice(2));
const module = await transpiled(options.component);

_setArgs([basename(options.component), ...options.args]);
_setEnv(options.env);
_clearPreopens();
for (const [host, guest] of options.dirs) _addPreopen(guest, host);

const component = await import(pathToFileURL(module).href);
if (typeof component.run?.run !== "function") {
    fail(`${options.component} is not a command component (it exports no wasi:cli/run)`);
}
try {
    // A guest's exit() ends the process from inside the shim with its status;
    // returning means success.
    component.run.run();
} catch (e) {
    console.error(`run.mjs: ${options.component} trapped: ${e?.stack ?? e}`);
    process.exitCode = 1;
}
