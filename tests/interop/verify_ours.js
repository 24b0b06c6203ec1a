#!/usr/bin/env node
// Checks that jsonwebtoken accepts the tokens tessera signs, with the claims tessera meant.
//
//   TESS_INTEROP_OUT=/tmp/ours.txt <build>/test_jwt && node verify_ours.js /tmp/ours.txt
//   (or: ./check_ours.sh <build dir>)
//
// Each input line: "<token> <hex userId> <role|-> <jti|-> <iat> <exp> <nbf>", signed with the first
// secret of the list that gen_vectors.js uses (test_jwt's fixture).
'use strict';

const fs = require('fs');
const jwt = require('jsonwebtoken');

const SECRET = 'jwt-secret-\u00e9-1';
const file = process.argv[2];
if (!file) {
  console.error('usage: verify_ours.js <tokens file>');
  process.exit(2);
}
const lines = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '');
if (lines.length === 0) {
  console.error('no tokens in ' + file);
  process.exit(2);
}
let failed = 0;
for (const line of lines) {
  const [token, hexUser, role, jti, iat, exp, nbf] = line.split(' ');
  const want = {
    userId: Buffer.from(hexUser, 'hex').toString('utf8'),
    role: role === '-' ? undefined : role,
    jti: jti === '-' ? undefined : jti,
    iat: Number(iat),
    exp: Number(exp),
    nbf: Number(nbf) === 0 ? undefined : Number(nbf),
  };
  try {
    const decoded = jwt.verify(token, SECRET, {algorithms: ['HS256'], complete: true});
    const h = decoded.header;
    const p = decoded.payload;
    if (h.alg !== 'HS256' || h.typ !== 'JWT' || Object.keys(h).length !== 2) throw new Error('header ' + JSON.stringify(h));
    for (const k of Object.keys(want)) {
      if (p[k] !== want[k]) throw new Error(`claim ${k}: ${JSON.stringify(p[k])} != ${JSON.stringify(want[k])}`);
    }
    // and the wrong secret fails
    let forged = false;
    try {
      jwt.verify(token, 'not-the-secret', {algorithms: ['HS256']});
      forged = true;
    } catch (e) { /* expected */ }
    if (forged) throw new Error('verified with a wrong secret');
    console.log('ok   ' + JSON.stringify(p));
  } catch (e) {
    failed++;
    console.log('FAIL ' + token + ': ' + e.message);
  }
}
console.log(`${lines.length - failed}/${lines.length} tokens signed by tessera verified by jsonwebtoken`);
process.exit(failed ? 1 : 0);
