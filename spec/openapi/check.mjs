// The OpenAPI checks of spec/integration/openapi_spec.lua, on a document keryx served
// (GET /api/swagger, saved to a file by the spec). One command per run; prints one JSON line
// {ok, ...} on stdout and exits 0 when the check passed, 1 when it did not.
//
//   node check.mjs validate DOC          @apidevtools/swagger-parser validates DOC (OpenAPI 3.0
//                                         schema + semantics, $refs resolved)
//   node check.mjs types DOC DIR TS      openapi-typescript turns DOC into DIR/api.d.ts, TS (a
//                                         .ts file importing "./api") is copied into DIR and
//                                         tsc --strict --noEmit checks it; the answer carries
//                                         tsc's diagnostics (file(line,col): error TSnnnn)
//   node check.mjs responses DOC SEEN    SEEN: a JSON list of answers keryx really gave,
//                                         {path, method, status, body, headers}: each status must be
//                                         documented for that operation, each body must match its
//                                         schema (ajv), each documented required header be sent
import { readFileSync, writeFileSync, copyFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import SwaggerParser from "@apidevtools/swagger-parser";
import openapiTS, { astToString } from "openapi-typescript";
import Ajv from "ajv";

const here = dirname(fileURLToPath(import.meta.url));
const [cmd, docPath, ...rest] = process.argv.slice(2);
const readJSON = (p) => JSON.parse(readFileSync(p, "utf8"));

function done(ok, extra) {
  process.stdout.write(JSON.stringify({ ok, ...extra }) + "\n");
  process.exit(ok ? 0 : 1);
}

async function validate() {
  try {
    const api = await SwaggerParser.validate(readJSON(docPath));
    done(true, { openapi: api.openapi, paths: Object.keys(api.paths).length });
  } catch (e) {
    done(false, { error: String(e && e.message ? e.message : e) });
  }
}

async function types() {
  const [dir, tsFile] = rest;
  const ast = await openapiTS(readJSON(docPath));
  writeFileSync(join(dir, "api.d.ts"), astToString(ast));
  const target = join(dir, basename(tsFile));
  copyFileSync(tsFile, target);
  const tsc = join(here, "node_modules", "typescript", "bin", "tsc");
  const r = spawnSync(process.execPath, [tsc, "--strict", "--noEmit", "--target", "es2022", "--module", "esnext",
    "--moduleResolution", "bundler", "--pretty", "false", target], { cwd: dir, encoding: "utf8" });
  const diagnostics = (r.stdout + r.stderr).split("\n").filter((l) => /error TS\d+/.test(l));
  done(r.status === 0, { status: r.status, diagnostics });
}

async function responses() {
  const api = await SwaggerParser.dereference(readJSON(docPath));
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  const problems = [];
  let checked = 0;
  for (const seen of readJSON(rest[0])) {
    const where = `${seen.method} ${seen.path} -> ${seen.status}`;
    const op = api.paths[seen.path] && api.paths[seen.path][seen.method.toLowerCase()];
    if (!op) { problems.push(`${where}: no such operation`); continue; }
    const res = op.responses[String(seen.status)];
    if (!res) { problems.push(`${where}: status not documented`); continue; }
    const schema = res.content && res.content["application/json"] && res.content["application/json"].schema;
    if (!schema) { problems.push(`${where}: no JSON schema`); continue; }
    let body;
    try { body = JSON.parse(seen.body); } catch { problems.push(`${where}: body is not JSON`); continue; }
    if (!ajv.validate(schema, body)) {
      problems.push(`${where}: ${ajv.errorsText(ajv.errors)} in ${seen.body.slice(0, 300)}`);
    }
    for (const name of Object.keys(seen.expect_headers ? res.headers || {} : {})) {
      if (seen.headers[name.toLowerCase()] === undefined) problems.push(`${where}: header ${name} not sent`);
    }
    checked++;
  }
  done(problems.length === 0, { checked, problems });
}

const commands = { validate, types, responses };
if (!commands[cmd]) done(false, { error: `unknown command ${cmd}` });
await commands[cmd]();
