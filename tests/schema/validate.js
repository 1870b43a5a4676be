#!/usr/bin/env node
// Validates every YAML document of the given files against
// schemas/<kind>.schema.json with ajv (JSON Schema draft 2020-12), parsing
// YAML 1.2 (core schema) with the `yaml` package.
//
// Prints one line per file: "ok <file>" or "invalid <file>: <reason>", and
// exits 0 when every file is valid, 1 otherwise, 2 on a usage or schema error.
'use strict';

const fs = require('fs');
const path = require('path');
const Ajv2020 = require('ajv/dist/2020');
const addFormats = require('ajv-formats');
const YAML = require('yaml');

const schemaDir = path.resolve(__dirname, '..', '..', 'schemas');
const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false, strictTypes: false });
addFormats(ajv);
const validators = {};
for (const kind of ['Agent', 'Registry', 'Target', 'Environment', 'Notifier']) {
  const file = path.join(schemaDir, kind.toLowerCase() + '.schema.json');
  validators[kind] = ajv.compile(JSON.parse(fs.readFileSync(file, 'utf8')));
}

function check(file) {
  const docs = YAML.parseAllDocuments(fs.readFileSync(file, 'utf8'), { version: '1.2' });
  const reasons = [];
  docs.forEach((doc, i) => {
    if (doc.errors.length > 0) {
      reasons.push(`document ${i + 1}: YAML error: ${doc.errors[0].message.split('\n')[0]}`);
      return;
    }
    const value = doc.toJS({ maxAliasCount: 10000 });
    if (value === null || value === undefined) return;  // empty document
    // A SOPS-encrypted file ({sops: ...} secret references read it): data, not
    // a manifest, as the loader (loader.cc IsSopsDocument) sees it.
    if (typeof value === 'object' && !('kind' in value) && value.sops &&
        typeof value.sops === 'object' && ('mac' in value.sops || 'lastmodified' in value.sops)) {
      return;
    }
    if (only && !(value && value.kind === only)) return;  // --kind: other kinds skipped
    const validate = value && typeof value === 'object' ? validators[value.kind] : undefined;
    if (!validate) {
      reasons.push(`document ${i + 1}: unknown kind ${JSON.stringify(value && value.kind)}`);
      return;
    }
    if (!validate(value)) {
      reasons.push(`document ${i + 1}: ` +
                   validate.errors.map((e) => `${e.instancePath || '/'} ${e.message}`).join('; '));
    }
  });
  return reasons;
}

// --kind KIND: check only the documents of that kind (an Environment's
// folder holds patches, which are partial documents).
let only = null;
let files = process.argv.slice(2);
if (files[0] === '--kind') {
  only = files[1];
  files = files.slice(2);
}
if (files.length === 0) {
  console.error('usage: validate.js FILE...');
  process.exit(2);
}
let failed = 0;
for (const file of files) {
  let reasons;
  try {
    reasons = check(file);
  } catch (e) {
    reasons = [`cannot parse: ${e.message.split('\n')[0]}`];
  }
  if (reasons.length === 0) {
    console.log(`ok ${file}`);
  } else {
    failed++;
    console.log(`invalid ${file}: ${reasons.join(' | ')}`);
  }
}
process.exit(failed === 0 ? 0 : 1);
