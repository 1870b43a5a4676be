#!/usr/bin/env node
// Validates saved plan files (`reconcile plan --out FILE`) against
// schemas/plan.schema.json with ajv (JSON Schema draft 2020-12).
//
// Prints one line per file: "ok <file>" or "invalid <file>: <reason>", and
// exits 0 when every file is valid, 1 otherwise, 2 on a usage or schema error.
'use strict';

const fs = require('fs');
const path = require('path');
const Ajv2020 = require('ajv/dist/2020');
const addFormats = require('ajv-formats');

const schemaFile = path.resolve(__dirname, '..', '..', 'schemas', 'plan.schema.json');
const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false, strictTypes: false });
addFormats(ajv);
let validate;
try {
  validate = ajv.compile(JSON.parse(fs.readFileSync(schemaFile, 'utf8')));
} catch (e) {
  console.error(`schema error: ${e.message}`);
  process.exit(2);
}
const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: validate_plan.js FILE...');
  process.exit(2);
}
let failed = 0;
for (const file of files) {
  let reason = '';
  try {
    const value = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (!validate(value)) {
      reason = validate.errors.map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ');
    }
  } catch (e) {
    reason = `cannot parse: ${e.message.split('\n')[0]}`;
  }
  if (reason) {
    failed++;
    console.log(`invalid ${file}: ${reason}`);
  } else {
    console.log(`ok ${file}`);
  }
}
process.exit(failed ? 1 : 0);
