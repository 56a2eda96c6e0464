#!/usr/bin/env node
// Writes parser/src/kusto_commands.txt: the leading words of every management command of the
// official Kusto parser (npm @kusto/language-service-next, the package kql-oracle installs), so
// that Kustodian can tell "a Kusto command it does not implement" from a syntax error.
//
// Usage: node parser/tools/kusto_commands.js > parser/src/kusto_commands.txt
// (reads the package from $KQL_ORACLE_HOME, default ~/.cache/kql-oracle, where kql-oracle keeps it).
//
// The package ships Kusto.Language compiled to JavaScript; the engine's command grammar is the
// body of `EngineCommandGrammar.CreateCommandParsers`, one `var Name = Command("Name", parser)`
// per command built from parser combinators. This script reads that source text (the grammar
// objects themselves are closures that cannot be inspected), evaluates the combinators it knows
// symbolically and expands each command into the token sequences it can start with:
//   a word or punctuation token   itself (`show`, `table`, `(`, `<|`)
//   `_`                           a name (`T`, `['T']`)
//   `_.`                          a name that may be qualified (`db.T`)
//   `_+`, `_.+`                   a comma-separated list of names of either kind
//   `"`                           a string literal
// A sequence ends where the grammar goes on with something this script does not model (values,
// queries, property lists); it ends in ` $` when the command's grammar ends there, so the
// sequence is the whole command.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');

const home = process.env.KQL_ORACLE_HOME || path.join(os.homedir(), '.cache', 'kql-oracle');
const file = path.join(home, 'node_modules', '@kusto', 'language-service-next', 'Kusto.Language.Bridge.js');
const source = fs.readFileSync(file, 'utf8');

// The engine grammar's class, up to the next class definition.
const start = source.indexOf('Bridge.define("Kusto.Language.Parsing.EngineCommandGrammar"');
if (start < 0) throw new Error('EngineCommandGrammar not found in ' + file);
const end = source.indexOf('Bridge.define(', start + 1);
const body = source.slice(start, end);

// ---- a tokenizer and parser for the JavaScript expressions of the grammar ------------------

function tokenize(text) {
  const out = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (/\s/.test(c)) { i++; continue; }
    if (c === '"') {
      let j = i + 1, s = '';
      while (text[j] !== '"') { if (text[j] === '\\') { s += text[j + 1]; j += 2; } else { s += text[j++]; } }
      out.push({ t: 'str', v: s });
      i = j + 1;
      continue;
    }
    const m = /^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*/.exec(text.slice(i, i + 200));
    if (m) { out.push({ t: 'id', v: m[0] }); i += m[0].length; continue; }
    const n = /^[0-9]+/.exec(text.slice(i, i + 20));
    if (n) { out.push({ t: 'num', v: n[0] }); i += n[0].length; continue; }
    out.push({ t: 'p', v: c });
    i++;
  }
  return out;
}

// Expression forms: {k:'str'}, {k:'num'}, {k:'id', name}, {k:'arr', items}, {k:'call', callee, args}
// where callee is an expression (a path, or a call followed by `.Method`).
function parseExpr(toks, pos) {
  let e;
  const t = toks[pos.i];
  if (t.t === 'str') { pos.i++; e = { k: 'str', v: t.v }; }
  else if (t.t === 'num') { pos.i++; e = { k: 'num', v: t.v }; }
  else if (t.t === 'p' && t.v === '[') {
    pos.i++;
    const items = [];
    while (!(toks[pos.i].t === 'p' && toks[pos.i].v === ']')) {
      items.push(parseExpr(toks, pos));
      if (toks[pos.i].v === ',') pos.i++;
    }
    pos.i++;
    e = { k: 'arr', items };
  } else if (t.t === 'id' && t.v === 'new') {
    pos.i++;
    return parseExpr(toks, pos);
  } else if (t.t === 'id') { pos.i++; e = { k: 'id', name: t.v }; }
  else throw new Error('unexpected ' + JSON.stringify(t) + ' at ' + pos.i);
  for (;;) {
    const n = toks[pos.i];
    if (n && n.t === 'p' && n.v === '(') {
      pos.i++;
      const args = [];
      while (!(toks[pos.i].t === 'p' && toks[pos.i].v === ')')) {
        args.push(parseExpr(toks, pos));
        if (toks[pos.i].v === ',') pos.i++;
      }
      pos.i++;
      e = { k: 'call', callee: e, args };
    } else if (n && n.t === 'p' && n.v === '.' && toks[pos.i + 1].t === 'id') {
      pos.i += 2;
      e = { k: 'member', obj: e, name: toks[pos.i - 1].v };
    } else if (n && n.t === 'id' && n.v.startsWith('.')) {
      // The tokenizer keeps `.Name` chains glued to a preceding `)` as one identifier.
      pos.i++;
      e = { k: 'member', obj: e, name: n.v.slice(1) };
    } else break;
  }
  return e;
}

// `var NAME = EXPR;` statements of the grammar's method.
const defs = new Map();
const commands = [];
for (const m of body.matchAll(/^\s*var (\w+) = (.*);\s*$/gm)) {
  const [, name, text] = m;
  if (name === 'commandParsers') continue;
  const toks = tokenize(text);
  const pos = { i: 0 };
  let expr;
  try { expr = parseExpr(toks, pos); } catch (err) { continue; }
  defs.set(name, expr);
  if (calleeName(unhide(expr)) === 'Command') commands.push(name);
}

// `p.Hide$1()` (a parser left out of completion lists) parses as `p`.
function unhide(e) {
  while (e.k === 'call' && e.callee.k === 'member' && e.callee.name === 'Hide$1') e = e.callee.obj;
  return e;
}

function calleeName(e) {
  if (e.k !== 'call') return null;
  const c = e.callee;
  if (c.k === 'id') return c.name.split('.').pop();
  if (c.k === 'member') return c.name;
  return null;
}

// ---- symbolic evaluation --------------------------------------------------------------------
// A parser becomes a list of alternatives; an alternative is {atoms, stop}: the atoms it starts
// with, and whether it goes on with something unknown (stop) or is complete.

const CAP = 256; // most ways to start one command (72 today); beyond it the script fails
const STOP = [{ atoms: [], stop: true }];
const EMPTY = [{ atoms: [], stop: false }];

function isShape(e) {
  if (e.k === 'id') return /^shape\d+$/.test(e.name);
  if (e.k !== 'call') return false;
  const n = calleeName(e);
  if (n === 'CD' || n === 'CD$1') return true;
  if (n === 'init' && e.args[1] && e.args[1].k === 'id' && e.args[1].name.endsWith('CustomElementDescriptor')) return true;
  return false;
}

function seq(parts) {
  let acc = EMPTY;
  for (const p of parts) {
    const next = [];
    for (const a of acc) {
      if (a.stop) { next.push(a); continue; }
      for (const b of p) next.push({ atoms: a.atoms.concat(b.atoms), stop: b.stop });
    }
    acc = dedupe(next);
    if (acc.length > CAP) throw new Error('more than ' + CAP + ' ways to start a command: raise CAP');
  }
  return acc;
}

function dedupe(alts) {
  const seen = new Set();
  return alts.filter(a => { const k = a.atoms.join(' ') + (a.stop ? '' : ' $'); if (seen.has(k)) return false; seen.add(k); return true; });
}

function evaluate(e) {
  if (e.k === 'id') {
    if (defs.has(e.name)) return evaluate(defs.get(e.name));
    // Names of the form `db.T` (or `T.c`) where the rule says so, plain names elsewhere.
    if (/^rules\.(Database\w+|Qualified\w*|TableColumn)(NameReference|NameDeclaration)$/.test(e.name)) return [{ atoms: ['_.'], stop: false }];
    if (/^rules\.\w*(NameReference|NameDeclaration)$/.test(e.name)) return [{ atoms: ['_'], stop: false }];
    if (e.name === 'rules.StringLiteral') return [{ atoms: ['"'], stop: false }];
    return STOP;
  }
  e = unhide(e);
  if (e.k !== 'call') return STOP;
  const name = calleeName(e);
  const args = e.args;
  switch (name) {
    case 'Token':
    case 'Token$1':
      return args[0].k === 'str' ? [{ atoms: [args[0].v], stop: false }] : STOP;
    case 'Token$2':
      return args[0].k === 'arr' ? args[0].items.map(s => ({ atoms: [s.v], stop: false })) : STOP;
    case 'Custom': case 'Custom$1': case 'Custom$2': case 'Custom$3': case 'Custom$4':
    case 'Custom$5': case 'Custom$6': case 'Custom$7': case 'Custom$8':
      return seq(args.filter(a => !isShape(a)).map(evaluate));
    case 'Custom$9': {
      const list = args[0];
      if (list.k === 'call' && calleeName(list) === 'init' && list.args[0].k === 'arr') return seq(list.args[0].items.map(evaluate));
      return STOP;
    }
    case 'Optional$1':
      return dedupe(EMPTY.concat(evaluate(args[1])));
    case 'Best$1':
    case 'First$1':
      return args[1] && args[1].k === 'arr' ? dedupe([].concat(...args[1].items.map(evaluate))) : STOP;
    case 'If$1':
      // `If(Not(...), p)` is `p` behind a look-ahead that keeps some keywords from being read
      // as names; the look-ahead is left out (the words after the name still have to match).
      return evaluate(args[2]);
    case 'OneOrMoreCommaList': {
      const item = evaluate(args[0]);
      if (item.length === 1 && !item[0].stop && item[0].atoms.length === 1 && item[0].atoms[0].startsWith('_')) return [{ atoms: [item[0].atoms[0] + '+'], stop: false }];
      return STOP;
    }
    case 'Command':
      return evaluate(args[1]);
    default:
      return STOP;
  }
}

const lines = [];
for (const name of commands) {
  for (const alt of evaluate(defs.get(name))) {
    // A sequence must say more than the verb (`.show` alone is every show command).
    if (alt.atoms.length < 2) continue;
    lines.push(name + '\t' + alt.atoms.join(' ') + (alt.stop ? '' : ' $'));
  }
}
process.stdout.write(
  '# Management commands of the official Kusto parser (Kusto.Language, npm\n' +
  '# @kusto/language-service-next ' + require(path.join(path.dirname(file), 'package.json')).version + '), one way to start each per line:\n' +
  '# the command\'s name, a tab, then its leading tokens (_ a name, _. a name that may be qualified,\n' +
  '# _+ and _.+ lists of such names, " a string;\n' +
  '# a final $ when the command ends there). Written by parser/tools/kusto_commands.js.\n' +
  lines.join('\n') + '\n');
