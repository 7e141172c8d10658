// The check page's checker: `clawdie-setup check` in a browser, offline. The facts (keys, tiers,
// secrecy, reserved names, profiles, time zones, locales, countries, wording kept as data) are
// the JSON below, generated from the Python checker by installer/media/check_page.py; the rules
// that are code are ported here from installer/seed/ (reader.py, rules.py, net_rules.py,
// model.py, resolve.py, resolved.py, commands/check.py), and tests/test_check_page.py runs both
// on the test corpus and requires the same verdict, problems, warnings, notes and values.
// Nothing here sends anything anywhere.
(function (root) {
  "use strict";
  const D = /*@DATA@*/;

  // --- Python's string semantics -------------------------------------------------------------
  const SPACE = "\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
  const SPACE_CLASS = "[" + SPACE + "]";
  const RE_SPACE = new RegExp(SPACE_CLASS);
  const RE_SPACES = new RegExp(SPACE_CLASS + "+", "g");
  const cps = (s) => Array.from(s);
  const plen = (s) => cps(s).length;
  const isAscii = (s) => /^[\x00-\x7f]*$/.test(s);
  const cat = (c, re) => re.test(c);
  const RE_CC = /^\p{Cc}$/u;
  const RE_CF = /^\p{Cf}$/u;
  const RE_ZLZP = /^[\p{Zl}\p{Zp}]$/u;
  const RE_LNPS = /^[\p{L}\p{N}\p{P}\p{S}]$/u;
  const RE_N = /^\p{N}$/u;
  const RE_ALPHA = /^\p{L}$/u;
  const RE_MARK = /^\p{M}$/u;
  function hex4(c) {
    return "U+" + c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
  }
  function strip(s, chars) {
    let a = 0;
    let b = s.length;
    while (a < b && chars.includes(s[a])) a++;
    while (b > a && chars.includes(s[b - 1])) b--;
    return s.slice(a, b);
  }
  const lstripSpace = (s) => s.replace(new RegExp("^" + SPACE_CLASS + "+"), "");
  const stripSpace = (s) =>
    s.replace(new RegExp("^" + SPACE_CLASS + "+"), "").replace(new RegExp(SPACE_CLASS + "+$"), "");
  function splitWords(s, maxsplit) {
    // str.split(None, maxsplit)
    const out = [];
    let rest = lstripSpace(s);
    while (rest) {
      if (maxsplit !== undefined && out.length === maxsplit) {
        out.push(rest);
        break;
      }
      const m = RE_SPACE.exec(rest);
      if (!m) {
        out.push(rest);
        break;
      }
      out.push(rest.slice(0, m.index));
      rest = lstripSpace(rest.slice(m.index));
    }
    return out;
  }
  function pad(s, width) {
    return s + " ".repeat(Math.max(0, width - plen(s)));
  }
  function commas(n) {
    return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }
  const sorted = (xs) => [...xs].sort();
  const uniqSorted = (xs) => sorted(new Set(xs));

  // difflib.SequenceMatcher / get_close_matches (no junk: the words are short).
  function matchingSize(a, b) {
    const b2j = new Map();
    b.forEach((ch, j) => {
      if (!b2j.has(ch)) b2j.set(ch, []);
      b2j.get(ch).push(j);
    });
    function longest(alo, ahi, blo, bhi) {
      let besti = alo;
      let bestj = blo;
      let bestsize = 0;
      let j2len = new Map();
      for (let i = alo; i < ahi; i++) {
        const next = new Map();
        for (const j of b2j.get(a[i]) || []) {
          if (j < blo) continue;
          if (j >= bhi) break;
          const k = (j2len.get(j - 1) || 0) + 1;
          next.set(j, k);
          if (k > bestsize) {
            besti = i - k + 1;
            bestj = j - k + 1;
            bestsize = k;
          }
        }
        j2len = next;
      }
      return [besti, bestj, bestsize];
    }
    let total = 0;
    const queue = [[0, a.length, 0, b.length]];
    while (queue.length) {
      const [alo, ahi, blo, bhi] = queue.pop();
      const [i, j, k] = longest(alo, ahi, blo, bhi);
      if (k) {
        total += k;
        if (alo < i && blo < j) queue.push([alo, i, blo, j]);
        if (i + k < ahi && j + k < bhi) queue.push([i + k, ahi, j + k, bhi]);
      }
    }
    return total;
  }
  function closeMatch(word, possibilities, cutoff) {
    const b = cps(word);
    let best = null;
    for (const x of possibilities) {
      const a = cps(x);
      const length = a.length + b.length;
      const ratioOf = (m) => (length ? (2 * m) / length : 1);
      if (ratioOf(Math.min(a.length, b.length)) < cutoff) continue;
      const avail = new Map();
      for (const ch of b) avail.set(ch, (avail.get(ch) || 0) + 1);
      let quick = 0;
      for (const ch of a) {
        const n = avail.get(ch) || 0;
        if (n > 0) quick++;
        avail.set(ch, n - 1);
      }
      if (ratioOf(quick) < cutoff) continue;
      const score = ratioOf(matchingSize(a, b));
      if (score < cutoff) continue;
      if (best === null || score > best[0] || (score === best[0] && x > best[1])) best = [score, x];
    }
    return best ? best[1] : null;
  }

  class Unreadable extends Error {
    constructor(message, hint) {
      super(message);
      this.hint = hint;
    }
  }
  class ValueProblem extends Error {
    constructor(message, hint) {
      super(message);
      this.hint = hint === undefined ? null : hint;
    }
  }
  const note = (line, message, warning) => ({ line, message, warning: !!warning });
  const problem = (line, key, message, hint, suggests) => ({
    line,
    key,
    message,
    hint: hint || null,
    suggests: suggests || null,
  });

  // --- reader.py -------------------------------------------------------------------------------
  const FIELDS = D.fields;
  const KNOWN = new Set(FIELDS.map((f) => f.key));
  const SECRET = new Set(FIELDS.filter((f) => f.secret).map((f) => f.key));
  const INVISIBLE = D.invisible_edge;
  const STRIP_CHARS = " \t" + Object.keys(INVISIBLE).join("");
  const CURLY_DOUBLE_OPEN = "\u201c\u201d\u201e";
  const CURLY_DOUBLE_CLOSE = "\u201c\u201d\u201f";
  const CURLY_SINGLE_OPEN = "\u2018\u2019\u201a";
  const CURLY_SINGLE_CLOSE = "\u2018\u2019\u201b";
  const ALL_QUOTES = "\"'" + CURLY_DOUBLE_OPEN + CURLY_DOUBLE_CLOSE + CURLY_SINGLE_OPEN + "\u201b";
  const NOT_SPACE = "[^" + SPACE + "]";
  const COMMENTED_SETTING_RE = new RegExp(
    "^#+[ \\t]*(?:export[ \\t]+)?([A-Za-z][A-Za-z0-9_]*)[ \\t]*=[ \\t]*" + NOT_SPACE
  );
  const PRIVATE_BEGIN = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;
  const PRIVATE_END = /-----END [A-Z0-9 ]*PRIVATE KEY-----/;

  function decodeUtf8(bytes) {
    // Python's strict UTF-8: {text} or {errorAt}
    let out = "";
    let i = 0;
    const n = bytes.length;
    while (i < n) {
      const b0 = bytes[i];
      if (b0 < 0x80) {
        out += String.fromCharCode(b0);
        i++;
        continue;
      }
      let need;
      let cp;
      let min;
      if (b0 >= 0xc2 && b0 <= 0xdf) [need, cp, min] = [1, b0 & 0x1f, 0x80];
      else if (b0 >= 0xe0 && b0 <= 0xef) [need, cp, min] = [2, b0 & 0x0f, 0x800];
      else if (b0 >= 0xf0 && b0 <= 0xf4) [need, cp, min] = [3, b0 & 0x07, 0x10000];
      else return { errorAt: i };
      for (let k = 1; k <= need; k++) {
        const b = bytes[i + k];
        if (b === undefined || (b & 0xc0) !== 0x80) return { errorAt: i };
        cp = (cp << 6) | (b & 0x3f);
      }
      if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return { errorAt: i };
      out += String.fromCodePoint(cp);
      i += need + 1;
    }
    return { text: out };
  }
  function decodeUnits(bytes, size, little) {
    let out = "";
    const n = bytes.length;
    const unit = (i) => {
      let v = 0;
      for (let k = 0; k < size; k++) v = v * 256 + bytes[little ? i + size - 1 - k : i + k];
      return v;
    };
    let i = 0;
    while (i < n) {
      if (i + size > n) return { errorAt: i };
      const u = unit(i);
      if (size === 4) {
        if (u > 0x10ffff || (u >= 0xd800 && u <= 0xdfff)) return { errorAt: i };
        out += String.fromCodePoint(u);
        i += 4;
        continue;
      }
      if (u >= 0xd800 && u <= 0xdbff) {
        if (i + 4 > n) return { errorAt: i };
        const lo = unit(i + 2);
        if (lo < 0xdc00 || lo > 0xdfff) return { errorAt: i };
        out += String.fromCharCode(u, lo);
        i += 4;
        continue;
      }
      if (u >= 0xdc00 && u <= 0xdfff) return { errorAt: i };
      out += String.fromCharCode(u);
      i += 2;
    }
    return { text: out };
  }
  function decodeWith(codec, bytes) {
    if (codec === "utf-8") return decodeUtf8(bytes);
    if (codec === "utf-16-le") return decodeUnits(bytes, 2, true);
    if (codec === "utf-16-be") return decodeUnits(bytes, 2, false);
    if (codec === "utf-32-le") return decodeUnits(bytes, 4, true);
    return decodeUnits(bytes, 4, false);
  }
  function refuseBinaryBytes(data) {
    if (!data.includes(0)) return;
    let odd = 0;
    let even = 0;
    for (let i = 0; i < data.length; i++) if (data[i] === 0) i % 2 ? odd++ : even++;
    const quarter = Math.floor(data.length / 4);
    if (odd > quarter || even > quarter) {
      throw new Unreadable(
        "the file contains NUL bytes: it looks like UTF-16 without a byte-order mark",
        "open it in a text editor and save it as UTF-8"
      );
    }
    throw new Unreadable(
      "the file contains NUL bytes: it is not a text file",
      "setup.txt must be plain text; start again from the setup.txt on a fresh stick"
    );
  }
  function refuseBinary(text) {
    if (text.includes("\x00")) refuseBinaryBytes(new TextEncoder().encode(text));
    const chars = cps(text);
    const controls = chars.filter((c) => cat(c, RE_CC) && !"\t\r\n\f\v".includes(c)).length;
    if (controls > Math.max(4, Math.floor(chars.length / 100))) {
      throw new Unreadable(
        "the file is full of control characters: it is not a text file",
        "setup.txt must be plain text; start again from the setup.txt on a fresh stick"
      );
    }
  }
  function decodeSeed(data) {
    if (data.length > D.max_seed_bytes) {
      throw new Unreadable(
        `the file is ${commas(data.length)} bytes; a setup.txt is at most ${D.max_seed_bytes / 1024} KiB`,
        "check that this is the setup.txt from the stick, not another file renamed"
      );
    }
    const notes = [];
    for (const [bom, codec, label] of D.boms) {
      if (bom.every((b, i) => data[i] === b)) {
        const r = decodeWith(codec, data.subarray(bom.length));
        if (r.text === undefined) {
          throw new Unreadable(
            `the file starts like ${label} text but is damaged at byte ${r.errorAt}`,
            "open it in a text editor and save it again as UTF-8"
          );
        }
        notes.push(note(1, `read as ${label}; the byte-order mark was removed`));
        refuseBinary(r.text);
        return [r.text, codec, notes];
      }
    }
    let text;
    let encoding = "utf-8";
    const r = decodeUtf8(data);
    if (r.text !== undefined) text = r.text;
    else {
      refuseBinaryBytes(data);
      const chars = [];
      for (const b of data) {
        const cp = D.cp1252[b];
        if (cp === null) {
          throw new Unreadable(
            "the file is neither UTF-8 nor Windows text; it does not look like a setup.txt",
            "open it in a text editor and save it as UTF-8"
          );
        }
        chars.push(String.fromCodePoint(cp));
      }
      text = chars.join("");
      encoding = "cp1252";
      const bad = new Set();
      let line = 1;
      for (const b of data) {
        if (b >= 0x80) bad.add(line);
        if (b === 0x0a) line++;
      }
      const badLines = [...bad].sort((x, y) => x - y);
      notes.push(
        note(
          badLines.length ? badLines[0] : null,
          `not UTF-8: read as Windows-1252 ("ANSI"); check the accented letters on ` +
            `line(s) ${badLines.slice(0, 8).join(", ")}, and save the file as UTF-8 next time`,
          true
        )
      );
    }
    refuseBinary(text);
    return [text, encoding, notes];
  }
  function splitLines(text) {
    const parts = text.split(/(\r\n|\r|\n)/);
    const lines = parts.filter((_, i) => i % 2 === 0);
    const ends = parts.filter((_, i) => i % 2 === 1);
    if (lines.length && lines[lines.length - 1] === "") lines.pop();
    const kinds = { "\r\n": "Windows (CRLF)", "\r": "old Mac (CR)", "\n": "Unix (LF)" };
    const seen = uniqSorted(ends.map((e) => kinds[e]));
    const notes = [];
    if (seen.length > 1) notes.push(note(null, `mixed line ends (${seen.join(", ")}); all were read`));
    else if (seen.length && seen[0] !== "Unix (LF)") notes.push(note(null, `${seen[0]} line ends read`));
    return [lines, notes];
  }
  function stripEdges(text) {
    const stripped = strip(text, STRIP_CHARS);
    let a = 0;
    while (a < text.length && STRIP_CHARS.includes(text[a])) a++;
    let b = text.length;
    while (b > a && STRIP_CHARS.includes(text[b - 1])) b--;
    const removed = [...text.slice(0, a), ...text.slice(b)];
    const names = uniqSorted(removed.filter((c) => c in INVISIBLE).map((c) => INVISIBLE[c]));
    return [stripped, names];
  }
  function unquote(value) {
    if (value.length >= 2) {
      const first = value[0];
      const last = value[value.length - 1];
      if (first === last && "\"'".includes(first)) return [value.slice(1, -1), "quotes around the value removed", false];
      if (CURLY_DOUBLE_OPEN.includes(first) && CURLY_DOUBLE_CLOSE.includes(last))
        return [value.slice(1, -1), "curly quotes around the value removed (TextEdit smart quotes)", false];
      if (CURLY_SINGLE_OPEN.includes(first) && CURLY_SINGLE_CLOSE.includes(last))
        return [value.slice(1, -1), "curly quotes around the value removed (TextEdit smart quotes)", false];
    }
    const opens = !!value && ALL_QUOTES.includes(value[0]);
    const closesDouble = !!value && ('"' + CURLY_DOUBLE_CLOSE).includes(value[value.length - 1]);
    return [value, null, opens || closesDouble];
  }
  function innerControls(value) {
    return uniqSorted(cps(value).filter((c) => cat(c, RE_CC) || cat(c, RE_ZLZP)).map(hex4));
  }
  function foldKey(text) {
    if (!isAscii(text)) {
      text = cps(text.normalize("NFKD"))
        .filter((c) => !cat(c, RE_MARK))
        .map((c) => D.lookalikes[c] || c)
        .join("");
    }
    return strip(text.toUpperCase().replace(/[^A-Z0-9]+/g, "_"), "_");
  }
  function scriptName(c) {
    const p = c.codePointAt(0);
    let lo = 0;
    let hi = D.scripts.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const [a, b, name] = D.scripts[mid];
      if (p < a) hi = mid - 1;
      else if (p > b) lo = mid + 1;
      else return name;
    }
    return "";
  }
  function otherScripts(word) {
    return uniqSorted(cps(word).filter((c) => !isAscii(c) && cat(c, RE_ALPHA)).map(scriptName));
  }
  function splitOn(text, re) {
    return text.split(re).filter((w) => w);
  }
  const RE_WORD_SEP = new RegExp("(?:" + SPACE_CLASS + "|[:=])+");
  function suggestKey(text, known, close) {
    const knownList = sorted(known);
    const words = splitOn(text, RE_WORD_SEP).slice(0, 6);
    for (let count = words.length; count > 0; count--) {
      const candidate = foldKey(words.slice(0, count).join("_"));
      if (known.has(candidate)) return candidate;
    }
    if (!words.length || !close) return null;
    return closeMatch(foldKey(words[0]), knownList, 0.6);
  }
  function didYouMeanHint(suggestion, line) {
    const first = line.split(RE_WORD_SEP)[0];
    const scripts = otherScripts(first);
    const other = scripts.length
      ? `the key has letters from another script (${scripts.join(", ")}) that look like Latin ones; `
      : "";
    return `did you mean ${suggestion}? ${other}write ${suggestion}=value`;
  }
  function noEqualsProblem(number, line, previousKey, known) {
    if (previousKey === "SSH_AUTHORIZED_KEY" && /^[A-Za-z0-9+/=@._ -]+$/.test(line)) {
      return problem(
        number,
        "SSH_AUTHORIZED_KEY",
        "the key continues on this line; a public key must be on one line",
        "join the lines of the key into one line after SSH_AUTHORIZED_KEY="
      );
    }
    const word = line.split(new RegExp("(?:" + SPACE_CLASS + "|:)"))[0];
    if (known.has(word.toUpperCase())) {
      const sep = lstripSpace(line.slice(word.length)).startsWith(":");
      const hint = `write ${word.toUpperCase()}=value` + (sep ? " (with '=' instead of ':')" : "");
      return problem(number, word.toUpperCase(), "this line has no '='", hint);
    }
    const suggestion = suggestKey(line, known, false);
    if (suggestion !== null) {
      return problem(
        number,
        null,
        "this line has no '=' and does not start with a known key",
        didYouMeanHint(suggestion, line),
        suggestion
      );
    }
    return problem(
      number,
      null,
      "this line is not KEY=value and not a comment",
      "add the key and '=', or put '#' in front to make the line a comment"
    );
  }
  function unknownKeyProblem(number, keyText, known) {
    const suggestion = suggestKey(keyText, known, true);
    if (/^[A-Za-z][A-Za-z0-9_]{0,39}$/.test(keyText)) {
      const hint = suggestion ? `did you mean ${suggestion}?` : "see setup.txt.example for the keys";
      return problem(number, keyText.toUpperCase(), "unknown key", hint, suggestion);
    }
    if (suggestion === null) {
      return problem(
        number,
        null,
        "this line does not start with a known key",
        "each line is KEY=value with a key from setup.txt.example, or a '#' comment"
      );
    }
    return problem(
      number,
      null,
      "this line does not start with a known key",
      didYouMeanHint(suggestion, keyText),
      suggestion
    );
  }
  function readValue(number, key, rawValue) {
    const problems = [];
    const repairs = [];
    if (/^[ \t]+#/.test(rawValue)) {
      problems.push(
        problem(
          number,
          key,
          "the value starts with '#' after a space; setup.txt has no comments after a value",
          `to leave ${key} unset write '${key}=' alone on the line; if '#' really begins ` +
            "the value, remove the space after '='"
        )
      );
      return [null, problems, repairs];
    }
    let [value, invisible] = stripEdges(rawValue);
    if (invisible.length) repairs.push(note(number, `${key}: removed ${invisible.join(" and ")} around the value`));
    const [unquoted, quoteRepair, lone] = unquote(value);
    value = unquoted;
    if (quoteRepair) repairs.push(note(number, `${key}: ${quoteRepair}`));
    if (lone) {
      problems.push(
        problem(
          number,
          key,
          "the value has a quote at one end only",
          "remove the stray quote, or put the whole value in quotes if the quote belongs to it"
        )
      );
      return [null, problems, repairs];
    }
    const controls = innerControls(value);
    if (controls.length) {
      problems.push(
        problem(
          number,
          key,
          `the value contains invisible control characters (${controls.join(", ")})`,
          "type the value again instead of pasting it"
        )
      );
      return [null, problems, repairs];
    }
    return [{ line: number, key, value }, problems, repairs];
  }
  function parseSeed(data, known) {
    const [text, encoding, repairs] = decodeSeed(data);
    const [lines, lineNotes] = splitLines(text);
    repairs.push(...lineNotes);
    const problems = [];
    const entries = [];
    const firstSeen = new Map();
    const commented = new Map();
    let inPrivate = null;
    let previousKey = null;
    lines.forEach((raw, index) => {
      const number = index + 1;
      if (inPrivate !== null) {
        if (PRIVATE_END.test(raw)) inPrivate = null;
        return;
      }
      if (PRIVATE_BEGIN.test(raw)) {
        problems.push(
          problem(
            number,
            "SSH_AUTHORIZED_KEY",
            "this is a PRIVATE key; it must never be on the stick and was not read",
            "delete it from setup.txt now and put the PUBLIC key (the one-line .pub file, " +
              "e.g. id_ed25519.pub) in SSH_AUTHORIZED_KEY; treat the private key as exposed"
          )
        );
        inPrivate = PRIVATE_END.test(raw) ? null : number;
        previousKey = null;
        return;
      }
      let [line, invisible] = stripEdges(raw);
      if (!line || line.startsWith("#")) {
        previousKey = null;
        const filled = COMMENTED_SETTING_RE.exec(line);
        if (filled && known.has(filled[1].toUpperCase()) && !commented.has(filled[1].toUpperCase()))
          commented.set(filled[1].toUpperCase(), number);
        return;
      }
      if (invisible.length) repairs.push(note(number, `removed ${invisible.join(" and ")} at the line's edge`));
      const exp = /^export[ \t]+/i.exec(line);
      if (exp && line.slice(exp[0].length).includes("=")) {
        line = line.slice(exp[0].length);
        repairs.push(note(number, "'export ' before the key ignored"));
      }
      if (!line.includes("=")) {
        problems.push(noEqualsProblem(number, line, previousKey, known));
        return;
      }
      const at = line.indexOf("=");
      const [keyText, keyInvisible] = stripEdges(line.slice(0, at));
      const rawValue = line.slice(at + 1);
      const key = keyText.toUpperCase();
      if (!key) {
        problems.push(problem(number, null, "there is no key before '='", "write KEY=value"));
        return;
      }
      if (!/^[A-Z][A-Z0-9_]*$/.test(key) || !known.has(key)) {
        problems.push(unknownKeyProblem(number, keyText, known));
        previousKey = null;
        return;
      }
      previousKey = key;
      if (firstSeen.has(key)) {
        problems.push(
          problem(
            number,
            key,
            `set twice (first on line ${firstSeen.get(key)})`,
            "keep one of the two lines and delete the other"
          )
        );
        return;
      }
      firstSeen.set(key, number);
      const [entry, entryProblems, entryRepairs] = readValue(number, key, rawValue);
      problems.push(...entryProblems);
      repairs.push(...entryRepairs);
      if (keyInvisible.length) repairs.push(note(number, `removed ${keyInvisible.join(" and ")} around the key`));
      if (entry !== null) entries.push(entry);
    });
    const stillCommented = [...commented].filter(([k]) => !firstSeen.has(k));
    for (const [key, number] of stillCommented) {
      repairs.push(
        note(number, `line ${number} is a comment, so ${key} is not set: remove the '#' at its start to use it`, true)
      );
    }
    return {
      entries,
      problems,
      repairs: repairs.filter((n) => !n.warning),
      warnings: repairs.filter((n) => n.warning),
      encoding,
      commented: new Map(stillCommented),
    };
  }

  // --- rules.py ----------------------------------------------------------------------------
  const RESERVED_HOST_LABELS = new Set(D.reserved_host_labels);
  const RESERVED_ACCOUNTS = new Set(D.reserved_accounts);
  const SSH_KEY_TYPES = new Set(D.ssh_key_types);
  const HOST_LABEL_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
  const PASSWORD_HASH_RE =
    /^(?:(\$(1|2[abxy]?|5|6|y|gy|7|argon2(id|i|d)|scrypt|pbkdf2[-_a-z0-9]*)\$[^\n]+)|([0-9a-f]{32}:[0-9a-f]{128}))$/;
  const DIRECTION_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069";
  const BLANK_LETTERS = "\u115f\u1160\u3164\uffa0\u2800";
  const MAPPING = D.mapping;
  const PROFILES = new Map(MAPPING.profiles.map((p) => [p.name, p]));
  const PROVIDERS = new Map(MAPPING.providers.map((p) => [p.name, p]));
  const ZONES = new Map(D.time_zones.map((z) => [z.toLowerCase(), z]));
  const LOCALES = new Map(D.locales.map((n) => [n.toLowerCase(), n]));
  const COUNTRIES = new Set(D.countries);
  const isDigits = (s) => /^[0-9]+$/.test(s);

  function noSpaces(value, what) {
    if (RE_SPACE.test(value))
      throw new ValueProblem(`the ${what} contains a space`, `copy the ${what} again; it is one word with no spaces`);
  }
  function checkApiKey(value, prefix, label) {
    noSpaces(value, `${label} key`);
    if (!/^[\x20-\x7e]*$/.test(value)) throw new ValueProblem(`the ${label} key has characters an API key never has`);
    if (prefix && !value.startsWith(prefix)) {
      let hint = `${label} keys start with ${prefix}; create one on the provider's keys page`;
      if (prefix === "sk-or-" && value.startsWith("sk-"))
        hint = "this looks like a key of another provider; OpenRouter keys start with sk-or-";
      throw new ValueProblem(`this is not a ${label} key`, hint);
    }
    if (value.length < 20) throw new ValueProblem(`the ${label} key is too short`, "copy the whole key");
    return value;
  }
  function checkOpenrouterKey(value) {
    checkApiKey(value, "sk-or-", "OpenRouter");
    if (!/^sk-or-[A-Za-z0-9_-]+$/.test(value)) throw new ValueProblem("the OpenRouter key has characters a key never has");
    return value;
  }
  function checkBotToken(value) {
    noSpaces(value, "bot token");
    if (/^bot\p{Nd}+:[^\n]*$/iu.test(value))
      throw new ValueProblem("the token starts with 'bot'", "remove 'bot' in front of the digits");
    const at = value.indexOf(":");
    const botId = at < 0 ? value : value.slice(0, at);
    if (at < 0 || !isDigits(botId)) {
      throw new ValueProblem(
        "this is not a Telegram bot token",
        "BotFather shows it as digits, a colon, then 35 letters, digits, _ or -"
      );
    }
    const secret = value.slice(at + 1);
    if (!/^[A-Za-z0-9_-]*$/.test(secret)) throw new ValueProblem("the part after ':' has characters a bot token never has");
    if (secret.length !== 35) {
      throw new ValueProblem(
        `the part after ':' has ${secret.length} characters; a bot token has 35`,
        "copy the whole token from BotFather again"
      );
    }
    return value;
  }
  function refuseOtherDigits(value, what) {
    if (cps(value).some((c) => !isAscii(c) && cat(c, RE_N))) {
      throw new ValueProblem(
        `the ${what} has digits other than 0-9 (full-width, superscript or of another script)`,
        "use the digits 0-9"
      );
    }
  }
  const USERINFO = "send a message to @userinfobot on Telegram: it replies with your numeric id";
  function checkAdminId(value) {
    if (value.startsWith("@")) throw new ValueProblem("this is a user name; the admin id is a number", USERINFO);
    if (value.startsWith("-"))
      throw new ValueProblem("negative ids belong to groups and channels; use your own user id", USERINFO);
    refuseOtherDigits(value, "admin id");
    if (!isDigits(value)) throw new ValueProblem("the admin id must be a number (digits only)", USERINFO);
    const n = BigInt(value);
    if (value.replace(/^0+/, "").length > 16 || !(n > 0n && n < 2n ** 53n))
      throw new ValueProblem("the admin id is out of range for a Telegram user id");
    return n.toString();
  }
  function refuseDirectionControls(value, what, hint) {
    const found = uniqSorted(cps(value).filter((c) => DIRECTION_CONTROLS.includes(c)).map(hex4));
    if (found.length) {
      throw new ValueProblem(
        `the ${what} contains a right-to-left override or other direction control ` +
          `(${found.join(", ")}): it can make text show in another order than typed`,
        hint
      );
    }
  }
  const showsSomething = (text) => cps(text).some((c) => cat(c, RE_LNPS) && !BLANK_LETTERS.includes(c));
  function checkAssistantName(value) {
    const name = value.normalize("NFC");
    if (plen(name) > 32) throw new ValueProblem(`the name has ${plen(name)} characters; at most 32`);
    refuseDirectionControls(
      name,
      "name",
      "type the name again instead of pasting it; names in right-to-left scripts need no control characters"
    );
    if (!showsSomething(name)) {
      throw new ValueProblem(
        "the name looks empty: it is made only of spaces or invisible characters",
        "type a name people can read, e.g. Ada"
      );
    }
    return name;
  }
  function checkProfile(value) {
    const name = value.toLowerCase();
    if (!PROFILES.has(name)) throw new ValueProblem("unknown profile", `use one of: ${[...PROFILES.keys()].join(", ")}`);
    return name;
  }
  function checkTimezone(value) {
    const key = (v) => v.toLowerCase().split(" ").join("_");
    const canonical = ZONES.get(key(value));
    if (canonical) return canonical;
    const before = stripSpace(value.split(/[ \t]+#/)[0]);
    if (before !== value && ZONES.has(key(before))) {
      const zone = ZONES.get(key(before));
      throw new ValueProblem(
        "unknown time zone: setup.txt has no comments after a value",
        `write TIMEZONE=${zone} alone on the line (a note goes on a line of its own, starting with #)`
      );
    }
    const city = "/" + key(value);
    const inCity = sorted([...ZONES.keys()].filter((z) => z.endsWith(city)).map((z) => ZONES.get(z)));
    if (inCity.length) throw new ValueProblem("unknown time zone", `did you mean ${inCity.slice(0, 3).join(" or ")}?`);
    const close = closeMatch(value.toLowerCase(), [...ZONES.keys()], 0.75);
    throw new ValueProblem(
      "unknown time zone",
      close ? `did you mean ${ZONES.get(close)}?` : "use an IANA name like Europe/Berlin"
    );
  }
  function checkHostname(value) {
    const name = value.toLowerCase();
    if (name.includes(".")) throw new ValueProblem("a host name is one label without dots", "put a domain in AGENT_DOMAIN instead");
    if (plen(name) > 63) throw new ValueProblem(`the host name has ${plen(name)} characters; at most 63`);
    if (name.includes("_")) throw new ValueProblem("a host name cannot contain '_'", "use '-' instead of '_'");
    if (!HOST_LABEL_RE.test(name))
      throw new ValueProblem("a host name uses only a-z, 0-9 and '-', and does not start or end with '-'");
    if (isDigits(name)) throw new ValueProblem("a host name cannot be only digits", "add a letter");
    if (RESERVED_HOST_LABELS.has(name)) throw new ValueProblem(`'${name}' is a reserved name`, "choose another host name");
    return name;
  }
  let translit = null;
  function anyascii(text) {
    if (translit === null) {
      translit = new Map();
      for (const [low, lengths, texts] of D.translit) {
        let at = 0;
        for (let i = 0; i < lengths.length; i++) {
          const n = D.translit_digits.indexOf(lengths[i]);
          if (n) translit.set(low + i, texts.slice(at, at + n));
          at += n;
        }
      }
    }
    return cps(text)
      .map((c) => {
        const p = c.codePointAt(0);
        if (p < 0x80) return c;
        const t = translit.get(p);
        return t === undefined ? "" : t;
      })
      .join("");
  }
  function deriveHostname(name) {
    const ascii = isAscii(name) ? name : anyascii(name);
    const label = strip(strip(ascii.toLowerCase().replace(/[^a-z0-9]+/g, "-"), "-").slice(0, 63), "-");
    if (!label || isDigits(label) || RESERVED_HOST_LABELS.has(label)) return D.default_hostname;
    return label;
  }
  const RESERVED_DOMAINS = new Set([...RESERVED_HOST_LABELS, "localhost.localdomain"]);
  function checkDomain(value) {
    const name = value.toLowerCase().replace(/\.+$/, "");
    const labels = name.split(".");
    if (plen(name) > 253 || !labels.every((l) => HOST_LABEL_RE.test(l)))
      throw new ValueProblem("not a valid domain name", "use labels of a-z, 0-9 and '-' joined by dots");
    if (RESERVED_DOMAINS.has(name) || ["localhost", "invalid"].includes(labels[labels.length - 1])) {
      throw new ValueProblem(
        `'${name}' is a reserved name, not a domain for the dashboard`,
        "remove the line to use <hostname>.local, or use a domain you own"
      );
    }
    return name;
  }
  function utf8Locale(name) {
    const at = name.indexOf("@");
    return at < 0 ? `${name}.UTF-8` : `${name.slice(0, at)}.UTF-8${name.slice(at)}`;
  }
  function localeHint(base, modifier) {
    const language = base.split("_")[0].toLowerCase();
    const same = sorted(
      [...LOCALES].filter(([k]) => k.split("@")[0].split("_")[0] === language).map(([, n]) => n)
    );
    const countries = uniqSorted(same.filter((n) => n.includes("_")).map((n) => n.split("@")[0].split("_")[1]));
    if (countries.length) {
      const typed = base.includes("_") ? base.slice(base.indexOf("_") + 1).toUpperCase() : "";
      const main = [typed, language.toUpperCase(), "US", countries[0]].find((c) => countries.includes(c));
      return `Debian has ${language} for ${countries.join(", ")}: write e.g. ${language}_${main}.UTF-8`;
    }
    if (same.length) return `did you mean ${utf8Locale(same[0])}?`;
    const close = closeMatch(`${base}${modifier}`.toLowerCase(), [...LOCALES.keys()], 0.75);
    if (close) return `did you mean ${utf8Locale(LOCALES.get(close))}?`;
    return "write it like en_US.UTF-8 or de_DE.UTF-8";
  }
  function checkLocale(value) {
    const m = /^([A-Za-z]{1,3}(?:_[A-Za-z]{2})?)(?:\.([A-Za-z0-9-]+))?(@[A-Za-z]+)?$/.exec(value);
    if (!m) throw new ValueProblem("not a locale name", "write it like en_US.UTF-8 or de_DE.UTF-8");
    const base = m[1];
    const charset = m[2];
    const modifier = m[3] || "";
    if (charset !== undefined && charset.toLowerCase().split("-").join("") !== "utf8")
      throw new ValueProblem("only UTF-8 locales are supported", `write ${base}.UTF-8${modifier}`);
    const known = LOCALES.get(`${base}${modifier}`.toLowerCase());
    if (known === undefined)
      throw new ValueProblem(`${utf8Locale(base + modifier)} is not a locale Debian can generate`, localeHint(base, modifier));
    return utf8Locale(known);
  }
  function checkKeymap(value) {
    const keymap = value.toLowerCase();
    if (!/^[a-z][a-z0-9_-]{0,31}$/.test(keymap)) throw new ValueProblem("not a keyboard layout name", "write it like us, de, fr or uk");
    return keymap;
  }
  const EMAIL_RE = new RegExp(
    `^[^@${SPACE}]+@[^@${SPACE}.]+(\\.[^@${SPACE}.]+)+$`,
    "u"
  );
  function checkEmail(value) {
    if (!EMAIL_RE.test(value)) throw new ValueProblem("not an e-mail address", "write it like name@example.com");
    refuseDirectionControls(value, "e-mail address", "type the address again");
    const hidden = uniqSorted(cps(value).filter((c) => cat(c, RE_CF)).map(hex4));
    if (hidden.length) {
      throw new ValueProblem(
        `the e-mail address contains invisible characters (${hidden.join(", ")})`,
        "type the address again instead of pasting it"
      );
    }
    return value.toLowerCase();
  }
  function checkPassword(value) {
    const password = value.normalize("NFKC");
    if (PASSWORD_HASH_RE.test(password))
      throw new ValueProblem("this looks like a password hash, not a password", "write the password itself; the installer hashes it");
    if (plen(password) < D.min_password) throw new ValueProblem(`the password is shorter than ${D.min_password} characters`);
    if (plen(password) > D.max_password) throw new ValueProblem(`the password is longer than ${D.max_password} characters`);
    return password;
  }
  function b64decode(text) {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return null;
    const body = text.replace(/=+$/, "");
    const padding = text.length - body.length;
    const rest = body.length % 4;
    if (rest === 1 || (rest === 2 && padding < 2) || (rest === 3 && padding !== 1)) return null;
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const out = [];
    let bits = 0;
    let acc = 0;
    for (const c of body) {
      acc = (acc << 6) | alphabet.indexOf(c);
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out.push((acc >> bits) & 0xff);
      }
    }
    return Uint8Array.from(out);
  }
  function wireStrings(blob) {
    const fields = [];
    let pos = 0;
    while (pos < blob.length) {
      if (pos + 4 > blob.length) return null;
      const length = ((blob[pos] << 24) >>> 0) + (blob[pos + 1] << 16) + (blob[pos + 2] << 8) + blob[pos + 3];
      pos += 4;
      if (pos + length > blob.length) return null;
      fields.push(blob.subarray(pos, pos + length));
      pos += length;
    }
    return fields;
  }
  const bytesText = (b) => String.fromCharCode(...b);
  const bigOf = (b) => (b.length ? BigInt("0x" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("")) : 0n);
  const damaged = () => new ValueProblem("the key is damaged or cut short", "copy the whole line of the .pub file again");
  function checkSshKeyFields(type, fields) {
    if (type === "ssh-rsa") {
      if (fields.length !== 2) throw damaged();
      const [e, n] = fields.map(bigOf);
      if (e < 3n || e % 2n === 0n || n % 2n === 0n) throw damaged();
      const bits = n.toString(2).length;
      if (bits < D.min_rsa_bits) {
        throw new ValueProblem(
          `this RSA key has ${bits} bits; at least ${D.min_rsa_bits} are needed (shorter keys can be broken)`,
          "make a new key with ssh-keygen -t ed25519 and paste its .pub file"
        );
      }
      if (bits > D.max_rsa_bits) {
        throw new ValueProblem(
          `this RSA key has ${bits} bits; OpenSSH refuses more than ${D.max_rsa_bits}`,
          "make a new key with ssh-keygen -t ed25519 and paste its .pub file"
        );
      }
      return;
    }
    if (type === "ssh-ed25519" || type === "sk-ssh-ed25519@openssh.com") {
      const count = type === "ssh-ed25519" ? 1 : 2;
      if (fields.length !== count || fields[0].length !== 32) throw damaged();
      return;
    }
    const curveName = type.replace(/^sk-/, "").split("@")[0];
    const curve = curveName.slice(curveName.lastIndexOf("-") + 1);
    const sizes = { nistp256: 65, nistp384: 97, nistp521: 133 };
    const count = type.startsWith("sk-") ? 3 : 2;
    if (fields.length !== count || bytesText(fields[0]) !== curve || fields[1].length !== sizes[curve] || fields[1][0] !== 4)
      throw damaged();
  }
  function checkSshKey(value) {
    if (value.includes("PRIVATE KEY")) {
      throw new ValueProblem(
        "this is a PRIVATE key; it must never be on the stick",
        "delete it from setup.txt now and put the one-line .pub file's content here"
      );
    }
    const parts = splitWords(value, 2);
    if (parts.length < 2 || !SSH_KEY_TYPES.has(parts[0])) {
      throw new ValueProblem(
        "not an OpenSSH public key",
        "paste the whole line of your .pub file, e.g. id_ed25519.pub (ssh-ed25519 AAAA…)"
      );
    }
    const [type, blob] = parts;
    const comment = parts.length > 2 ? parts[2] : "";
    if (splitWords(comment).some((t) => SSH_KEY_TYPES.has(t)))
      throw new ValueProblem("two keys on one line; only one key is supported", "keep one of the two keys");
    refuseDirectionControls(comment, "key's comment", "remove the comment after the key, or type it again");
    const raw = b64decode(blob);
    if (raw === null) throw new ValueProblem("the key is damaged (not valid base64)", "copy it again");
    const fields = wireStrings(raw);
    if (fields === null || fields.length < 2 || bytesText(fields[0]) !== type) throw damaged();
    checkSshKeyFields(type, fields.slice(1));
    return [type, blob, comment].filter((p) => p).join(" ");
  }
  function checkAccount(value) {
    if (!/^[a-z][a-z0-9_-]{0,31}$/.test(value)) {
      throw new ValueProblem(
        "not a valid user name",
        "use lower-case letters, digits, '-' and '_', starting with a letter, at most 32"
      );
    }
    if (RESERVED_ACCOUNTS.has(value) || value.startsWith("systemd-"))
      throw new ValueProblem(`'${value}' is a system account name`, "choose another name");
    return value;
  }
  function checkProvider(value) {
    const name = value.toLowerCase();
    if (!PROVIDERS.has(name)) throw new ValueProblem("unknown provider", `use one of: ${[...PROVIDERS.keys()].join(", ")}`);
    return name;
  }
  function checkModelName(value) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$/.test(value))
      throw new ValueProblem("not a model id", "write it as the provider lists it, e.g. openai/o3");
    return value;
  }
  function checkCooldown(value) {
    refuseOtherDigits(value, "number of seconds");
    if (!isDigits(value) || value.replace(/^0+/, "").length > 5 || Number(value) > 86400)
      throw new ValueProblem("must be a whole number of seconds from 0 to 86400");
    return String(Number(value));
  }
  function checkInstallMode(value) {
    const mode = value.toLowerCase();
    if (!D.install_modes.includes(mode)) throw new ValueProblem("unknown install mode", "use fresh, adopt, restore or reset");
    return mode;
  }
  function checkBackupIdentity(value) {
    const identity = stripSpace(value).toUpperCase();
    if (!/^AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}$/.test(identity)) {
      throw new ValueProblem("not an age identity", "copy the line that starts with AGE-SECRET-KEY-1 from the owner's key file");
    }
    return identity;
  }
  function checkBackupFile(value) {
    const name = stripSpace(value);
    if (!name || name.includes("/") || name.includes("\\") || name === "." || name === ".." || cps(name).length > 255) {
      throw new ValueProblem(
        "must be the name of a file next to setup.txt, not a path",
        `copy the backup (…${D.backup_suffix}) next to setup.txt and give its name`
      );
    }
    if (!name.toLowerCase().endsWith(D.backup_suffix)) {
      throw new ValueProblem(
        `not a backup's name (it ends in ${D.backup_suffix})`,
        "give the name clawdie-setup backup wrote, e.g. my-box-2026-01-31.backup.age"
      );
    }
    return name;
  }
  function checkFingerprint(value) {
    const digits = stripSpace(value).toLowerCase().split("-").join("");
    if (!/^[0-9a-f]{8,32}$/.test(digits)) {
      throw new ValueProblem(
        "not an installation fingerprint",
        "copy the 8 characters shown as Fingerprint on the box's login screen, in its " +
          "install summary or on its receipt, e.g. INSTALL_FINGERPRINT=3f2a9c01"
      );
    }
    return digits.slice(0, D.fingerprint_digits);
  }
  function checkAdoptCode(value) {
    const chars = cps(splitWords(value).join("").split("-").join("").toUpperCase());
    const size = D.adopt_code_groups * D.adopt_code_group_len;
    if (chars.length !== size || chars.some((c) => !D.adopt_code_alphabet.includes(c))) {
      throw new ValueProblem(
        "not an adopt code",
        "copy ADOPT_CODE= from the box's first-boot report (SETUP-RESULT.txt on the stick " +
          "it was installed with, or the Telegram report): 16 letters and digits in four groups of four"
      );
    }
    const groups = [];
    for (let i = 0; i < size; i += D.adopt_code_group_len) groups.push(chars.slice(i, i + D.adopt_code_group_len).join(""));
    return groups.join("-");
  }
  function checkTargetDisk(value) {
    if (value.slice(0, 7).toLowerCase() === "serial:") {
      const serial = value.slice(7);
      if (!/^[A-Za-z0-9._:-]{1,64}$/.test(serial)) {
        throw new ValueProblem(
          "not a disk serial number",
          "write the serial as printed on the disk's label, e.g. " +
            "TARGET_DISK=serial:S3Z1NB0K123456X (letters, digits, '.', '_', '-', ':')"
        );
      }
      return "serial:" + serial;
    }
    const path = value.startsWith("/dev/") ? value : `/dev/${value}`;
    if (path.includes("..") || !/^\/dev\/[A-Za-z0-9._:/@+-]+$/.test(path))
      throw new ValueProblem("not a disk name", "write it like serial:S3Z1NB0K123456X, /dev/disk/by-id/… or sda");
    const byId = "/dev/disk/by-id/";
    if (path.startsWith(byId)) {
      const name = path.slice(byId.length);
      if (!name || name.includes("/")) {
        throw new ValueProblem(
          "not a disk name",
          "a /dev/disk/by-id/ name is one entry of that folder, as the installer's console lists it"
        );
      }
    }
    return path;
  }
  const isStableDiskName = (d) => d.startsWith("serial:") || d.startsWith("/dev/disk/by-id/");
  function checkYesNo(value) {
    const answer = value.toLowerCase();
    if (answer !== "yes" && answer !== "no") throw new ValueProblem("write yes or no");
    return answer;
  }

  // --- net_rules.py: Python's ipaddress, the parts the rules use --------------------------------
  function parseV4(text) {
    const octets = text.split(".");
    if (octets.length !== 4) return null;
    let n = 0n;
    for (const o of octets) {
      if (!/^[0-9]{1,3}$/.test(o) || (o.length > 1 && o[0] === "0") || Number(o) > 255) return null;
      n = n * 256n + BigInt(o);
    }
    return n;
  }
  function parseV6(text) {
    let scope = null;
    const pct = text.indexOf("%");
    if (pct >= 0) {
      scope = text.slice(pct + 1);
      text = text.slice(0, pct);
      if (!scope || scope.includes("%")) return null;
    }
    if (!text) return null;
    const parts = text.split(":");
    if (parts.length < 3) return null;
    if (parts[parts.length - 1].includes(".")) {
      const v4 = parseV4(parts.pop());
      if (v4 === null) return null;
      parts.push(((v4 >> 16n) & 0xffffn).toString(16), (v4 & 0xffffn).toString(16));
    }
    if (parts.length > 9) return null;
    let skip = null;
    for (let i = 1; i < parts.length - 1; i++) {
      if (!parts[i]) {
        if (skip !== null) return null;
        skip = i;
      }
    }
    let hi;
    let lo;
    let skipped;
    if (skip !== null) {
      hi = skip;
      lo = parts.length - skip - 1;
      if (!parts[0]) {
        hi -= 1;
        if (hi) return null;
      }
      if (!parts[parts.length - 1]) {
        lo -= 1;
        if (lo) return null;
      }
      skipped = 8 - (hi + lo);
      if (skipped < 1) return null;
    } else {
      if (parts.length !== 8) return null;
      if (!parts[0] || !parts[parts.length - 1]) return null;
      [hi, lo, skipped] = [parts.length, 0, 0];
    }
    let n = 0n;
    const hextet = (h) => {
      if (!/^[0-9A-Fa-f]{1,4}$/.test(h)) throw new Error("hextet");
      return BigInt("0x" + h);
    };
    try {
      for (let i = 0; i < hi; i++) n = (n << 16n) | hextet(parts[i]);
      n <<= 16n * BigInt(skipped);
      for (let i = -lo; i < 0; i++) n = (n << 16n) | hextet(parts[parts.length + i]);
    } catch (err) {
      return null;
    }
    return { n, scope };
  }
  function v4Text(n) {
    return [24n, 16n, 8n, 0n].map((s) => ((n >> s) & 0xffn).toString()).join(".");
  }
  function v6Text(n, scope) {
    const hextets = [];
    for (let s = 112n; s >= 0n; s -= 16n) hextets.push(((n >> s) & 0xffffn).toString(16));
    let bestStart = -1;
    let bestLen = 0;
    let start = -1;
    hextets.forEach((h, i) => {
      if (h === "0") {
        if (start < 0) start = i;
        const len = i + 1 - start;
        if (len > bestLen) [bestStart, bestLen] = [start, len];
      } else start = -1;
    });
    let out;
    if (bestLen > 1) {
      const head = hextets.slice(0, bestStart);
      const tail = hextets.slice(bestStart + bestLen);
      out = head.join(":") + "::" + tail.join(":");
    } else out = hextets.join(":");
    return scope === null ? out : `${out}%${scope}`;
  }
  function ipAddress(text) {
    const v4 = parseV4(text);
    if (v4 !== null) return { version: 4, n: v4, scope: null };
    const v6 = parseV6(text);
    if (v6 !== null) return { version: 6, n: v6.n, scope: v6.scope };
    return null;
  }
  const bits = (a) => (a.version === 4 ? 32n : 128n);
  const ones = (count) => (1n << count) - 1n;
  const ipText = (a) => (a.version === 4 ? v4Text(a.n) : v6Text(a.n, a.scope));
  function prefixFromInt(n, width) {
    // a netmask: ones then zeros
    let zeros = 0n;
    while (zeros < width && ((n >> zeros) & 1n) === 0n) zeros++;
    const prefix = width - zeros;
    return n >> zeros === ones(prefix) ? Number(prefix) : null;
  }
  function ipInterface(text) {
    const parts = text.split("/");
    if (parts.length > 2) return null;
    const address = ipAddress(parts[0]);
    if (address === null) return null;
    const width = bits(address);
    let prefix = Number(width);
    if (parts.length === 2) {
      const mask = parts[1];
      if (/^[0-9]+$/.test(mask)) {
        prefix = Number(mask);
        if (prefix > Number(width)) return null;
      } else if (address.version === 4) {
        const m = parseV4(mask);
        if (m === null) return null;
        prefix = prefixFromInt(m, 32n);
        if (prefix === null) prefix = prefixFromInt(m ^ ones(32n), 32n);
        if (prefix === null) return null;
      } else return null;
    }
    return { ...address, prefix };
  }
  function network(iface) {
    const width = bits(iface);
    const host = ones(width - BigInt(iface.prefix));
    const net = iface.n & ~host & ones(width);
    return { version: iface.version, net, broadcast: net | host, prefix: iface.prefix, hostBits: Number(width) - iface.prefix };
  }
  const networkText = (net) => `${ipText({ version: net.version, n: net.net, scope: null })}/${net.prefix}`;
  const inRange = (a, base, prefix) => a.n >> (bits(a) - BigInt(prefix)) === base >> (bits(a) - BigInt(prefix));
  function props(a) {
    if (a.version === 4) {
      return {
        unspecified: a.n === 0n,
        loopback: inRange(a, 0x7f000000n, 8),
        multicast: inRange(a, 0xe0000000n, 4),
        reserved: inRange(a, 0xf0000000n, 4),
        linkLocal: inRange(a, 0xa9fe0000n, 16),
      };
    }
    return {
      unspecified: a.n === 0n,
      loopback: a.n === 1n,
      multicast: inRange(a, 0xffn << 120n, 8),
      reserved: false,
      linkLocal: inRange(a, 0xfe80n << 112n, 10),
    };
  }
  const FIX = {
    own: "use the address meant for this box",
    gateway: "write the router's address",
    dns: "write the address of a DNS server on the network or the internet",
  };
  function ipv6FormProblem(a) {
    if (a.scope !== null) {
      return [
        `an address with a scope id (%${a.scope}), which names an interface of one machine and is not part of an address`,
        `remove the % and what follows it: ${v6Text(a.n, null)}`,
      ];
    }
    if (a.n >> 32n === 0xffffn)
      return ["an IPv4 address written in IPv6 form (::ffff:…)", `write the IPv4 address itself: ${v4Text(a.n & 0xffffffffn)}`];
    if (a.n >> 32n === 0n && a.n > 1n) {
      return [
        "an IPv4-compatible IPv6 address (::a.b.c.d, retired in 2006)",
        `write the IPv4 address itself: ${v4Text(a.n & 0xffffffffn)}`,
      ];
    }
    return null;
  }
  function addressProblem(a, use) {
    if (a.version === 6) {
      const p = ipv6FormProblem(a);
      if (p !== null) return p;
    }
    const p = props(a);
    if (p.unspecified) return ["an unspecified address (all zeros)", FIX[use]];
    if (p.loopback) return ["a loopback address (this machine talking to itself)", FIX[use]];
    if (p.multicast) return ["a multicast address", FIX[use]];
    if (a.version === 4 && a.n === 0xffffffffn) return ["the broadcast address (every machine on the link)", FIX[use]];
    if (a.version === 4 && p.reserved) return ["a reserved address (240.0.0.0/4 is not used on networks)", FIX[use]];
    const linkLocalWorks = use === "gateway" && a.version === 6;
    if (p.linkLocal && !linkLocalWorks) {
      return [
        a.version === 4
          ? "a link-local address (169.254.x.x is chosen by a machine itself when no network gives it one)"
          : "a link-local address (fe80::, which every machine makes for itself and which needs an interface name to be reached)",
        FIX[use],
      ];
    }
    return null;
  }
  function checkNetAddress(value) {
    if (!value.includes("/"))
      throw new ValueProblem("the address needs its network size after a /", "write it like 192.168.1.50/24 (/24 is the usual home network)");
    const iface = ipInterface(value);
    if (iface === null)
      throw new ValueProblem("not an IP address with a network size", "write it like 192.168.1.50/24 or 2001:db8::50/64");
    const problem = addressProblem(iface, "own");
    const ip = ipText({ ...iface, scope: null }); // interface.ip: without the scope id
    if (problem !== null) throw new ValueProblem(`${ip} is ${problem[0]}`, problem[1]);
    const net = network(iface);
    if (net.hostBits >= 2 && iface.n === net.net) {
      throw new ValueProblem(
        `${ip} is the address of the network ${networkText(net)} itself, not of a machine`,
        "use an address inside the network for this box, e.g. one ending in .50"
      );
    }
    if (iface.version === 4 && net.hostBits >= 2 && iface.n === net.broadcast) {
      throw new ValueProblem(
        `${ip} is the broadcast address of ${networkText(net)}, not a machine's`,
        "use an address inside the network for this box, e.g. one ending in .50"
      );
    }
    return `${ipText(iface)}/${iface.prefix}`;
  }
  function checkNetGateway(value) {
    if (value.includes("/")) {
      throw new ValueProblem(
        "the gateway is one address, without a /network size",
        "write it like 192.168.1.1 (the network size belongs on NET_ADDRESS)"
      );
    }
    const a = ipAddress(value);
    if (a === null) throw new ValueProblem("not an IP address", "write the router's address, e.g. 192.168.1.1");
    const problem = addressProblem(a, "gateway");
    if (problem !== null) throw new ValueProblem(`the gateway cannot be ${problem[0]}`, problem[1]);
    return ipText(a);
  }
  function gatewayProblem(address, gateway) {
    const iface = ipInterface(address);
    const router = ipAddress(gateway);
    const net = network(iface);
    if (router.version !== iface.version) {
      return new ValueProblem(
        `the gateway is an IPv${router.version} address but NET_ADDRESS is IPv${iface.version}`,
        "give both as IPv4 (192.168.1.1) or both as IPv6"
      );
    }
    if (router.n === iface.n && router.scope === iface.scope)
      return new ValueProblem("the gateway is the box's own address", "write the router's address, e.g. 192.168.1.1");
    if (router.version === 6 && props(router).linkLocal) return null;
    if (!inRange(router, net.net, net.prefix)) {
      return new ValueProblem(
        `the gateway ${ipText(router)} is not inside the network ${networkText(net)} of NET_ADDRESS`,
        "check both lines: the router's address and the box's usually share all but " +
          "the last number (192.168.1.1 and 192.168.1.50/24)"
      );
    }
    if (net.hostBits >= 2 && (router.n === net.net || router.n === net.broadcast)) {
      return new ValueProblem(
        `the gateway ${ipText(router)} is the network's own or broadcast address`,
        "write the router's address, e.g. 192.168.1.1"
      );
    }
    return null;
  }
  function checkNetDns(value) {
    const words = splitOn(value, new RegExp("(?:" + SPACE_CLASS + "|[,;])+"));
    if (!words.length) throw new ValueProblem("no DNS server given", "write addresses like 1.1.1.1, 9.9.9.9");
    const servers = [];
    words.forEach((word, i) => {
      const a = ipAddress(word);
      if (a === null) {
        throw new ValueProblem(
          `DNS server ${i + 1} is not an IP address (names cannot be looked up before DNS works)`,
          "write addresses like 1.1.1.1, 9.9.9.9 or 2606:4700:4700::1111"
        );
      }
      const problem = addressProblem(a, "dns");
      if (problem !== null) throw new ValueProblem(`DNS server ${i + 1} (${word}) is ${problem[0]}`, problem[1]);
      if (!servers.includes(ipText(a))) servers.push(ipText(a));
    });
    if (servers.length > D.max_dns_servers)
      throw new ValueProblem(`${servers.length} DNS servers; at most ${D.max_dns_servers}`, "keep the first few");
    return servers.join(" ");
  }
  function checkWifiSsid(value) {
    const size = new TextEncoder().encode(value).length;
    if (size > D.max_ssid_bytes) {
      throw new ValueProblem(
        `the Wi-Fi name is ${size} bytes long; a Wi-Fi name has at most ${D.max_ssid_bytes} ` +
          "(letters outside A-Z take 2-4 bytes each)",
        "copy the name exactly as your phone or the router's label shows it"
      );
    }
    if (cps(value).some((c) => cat(c, RE_CC))) {
      throw new ValueProblem(
        "the Wi-Fi name contains control characters",
        "type the name again exactly as your phone or the router's label shows it"
      );
    }
    return value;
  }
  function checkWifiPassword(value) {
    if (/^[0-9A-Fa-f]{64}$/.test(value)) return value.toLowerCase();
    if (!/^[ -~]*$/.test(value)) {
      throw new ValueProblem(
        "the Wi-Fi password has characters a WPA password cannot have (only A-Z, a-z, 0-9, " +
          "spaces and the punctuation of an English keyboard are allowed)",
        "check the password on the router's label; letters such as é or ß are not allowed"
      );
    }
    if (value.length < D.min_wifi_password) {
      throw new ValueProblem(
        `the Wi-Fi password has ${value.length} characters; a WPA password has at least ${D.min_wifi_password}`,
        "copy the whole password from the router's label (open networks are not supported)"
      );
    }
    if (value.length > D.max_wifi_password) {
      throw new ValueProblem(
        `the Wi-Fi password has ${value.length} characters; a WPA password has at most ` +
          `${D.max_wifi_password} (or is a raw key of exactly 64 hex digits)`,
        "copy the password from the router's label again"
      );
    }
    return value;
  }
  function checkWifiCountry(value) {
    const code = stripSpace(value).toUpperCase();
    if (Object.prototype.hasOwnProperty.call(D.country_aliases, code))
      throw new ValueProblem(`${code} is not an ISO 3166 country code`, `write ${D.country_aliases[code]} (the ISO code of that country)`);
    if (code === "00") {
      throw new ValueProblem(
        "00 is the world-wide default, not a country",
        "write the two-letter code of the country the box is in, e.g. DE or US"
      );
    }
    if (!/^[A-Z]{2}$/.test(code)) {
      throw new ValueProblem(
        "the Wi-Fi country is a two-letter code",
        "write the ISO 3166 code of the country the box is in, e.g. DE for Germany, US, FR"
      );
    }
    if (!COUNTRIES.has(code)) {
      throw new ValueProblem(
        `${code} is not an ISO 3166 country code`,
        "write the two-letter code of the country the box is in, e.g. DE, US or FR"
      );
    }
    return code;
  }

  // --- maint_rules.py: the update window, updates on/off, the backup's keys and directory ------
  const WINDOW_HINT = "write the window as HH:MM-HH:MM in local time, e.g. 04:00-05:00 or 23:30-00:30";
  const RECIPIENT_HINT =
    "give the owner's public key: the line `age1…` that `age-keygen` prints (never the " +
    "AGE-SECRET-KEY line); several keys are separated by commas or spaces";
  const pad2 = (n) => String(n).padStart(2, "0");

  function checkUpdateWindow(value) {
    const m = /^([0-9]{1,2}):([0-9]{2})[ \t]*-[ \t]*([0-9]{1,2}):([0-9]{2})$/.exec(value);
    if (!m) throw new ValueProblem("not a time window", WINDOW_HINT);
    const [h1, m1, h2, m2] = m.slice(1).map(Number);
    for (const [hours, minutes] of [[h1, m1], [h2, m2]]) {
      if (hours > 23 || minutes > 59)
        throw new ValueProblem(
          `${hours}:${pad2(minutes)} is not a time of day`,
          "hours run from 00 to 23 and minutes from 00 to 59, e.g. 04:00-05:00"
        );
    }
    const length = (((h2 * 60 + m2 - (h1 * 60 + m1)) % 1440) + 1440) % 1440;
    if (length < D.window_minimum)
      throw new ValueProblem(
        `the window lasts ${length} minutes; it needs at least ${D.window_minimum}`,
        "give the updates and the reboot they may need some room, e.g. 04:00-05:00 (a " +
          "window may cross midnight: 23:30-00:30)"
      );
    return `${pad2(h1)}:${pad2(m1)}-${pad2(h2)}:${pad2(m2)}`;
  }

  function checkUpdates(value) {
    const answer = value.toLowerCase();
    if (answer === "security") return "on";
    if (answer !== "on" && answer !== "off")
      throw new ValueProblem(
        "write on or off",
        "on (the default): Debian's security fixes are applied in UPDATE_WINDOW; off: " +
          "nothing is updated by itself"
      );
    return answer;
  }

  // update_channel.py's one rule for a channel's address (parse_channel_url), and `off`
  function checkUpdateChannel(value) {
    if (value.toLowerCase() === "off") return "off";
    const hint =
      "copy the address of the update channel the publisher gives, beginning with https, or " +
      "write off for no update channel";
    const url = value.replace(/^[ \t]+|[ \t]+$/g, "");
    if (!/^[\x21-\x7e]*$/.test(url))
      throw new ValueProblem("the address holds a space, a control or a non-ASCII character", hint);
    if (url.includes("?") || url.includes("#")) throw new ValueProblem("a channel's address has no ? or # part", hint);
    const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)$/.exec(url);
    if (!m) throw new ValueProblem("not a whole web address: it begins with https, then ://, then the host", hint);
    const [scheme, host, path] = [m[1].toLowerCase(), m[2], m[3]];
    if (scheme !== "https" && scheme !== "http")
      throw new ValueProblem(`a channel is reached over https or http, not ${scheme}`, hint);
    if (!host || host.startsWith(":")) throw new ValueProblem("the address names no host", hint);
    if (host.includes("@")) throw new ValueProblem("the address holds a user name or password", hint);
    return `${scheme}://${host}${path.replace(/\/+$/, "")}`;
  }

  // bech32 (BIP 173), what pyrage's parser checks of an age1… key: the checksum and the padding
  const BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
  function bech32Valid(text) {
    const hrp = text.slice(0, 3);
    const values = [...hrp].map((c) => c.charCodeAt(0) >> 5);
    values.push(0, ...[...hrp].map((c) => c.charCodeAt(0) & 31));
    const data = [...text.slice(4)].map((c) => BECH32.indexOf(c));
    const GEN = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
    let chk = 1;
    for (const v of [...values, ...data]) {
      const top = chk >>> 25;
      chk = (((chk & 0x1ffffff) << 5) ^ v) >>> 0;
      for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk = (chk ^ GEN[i]) >>> 0;
    }
    // 52 groups of 5 bits hold the 32 bytes; the last 4 bits are padding and must be zero
    return chk === 1 && (data[51] & 15) === 0;
  }

  function checkBackupRecipient(value) {
    const keys = value.split(/[ \t,]+/).filter((k) => k);
    if (!keys.length) throw new ValueProblem("no key", RECIPIENT_HINT);
    if (keys.length > D.max_recipients) throw new ValueProblem(`${keys.length} keys; at most ${D.max_recipients}`, RECIPIENT_HINT);
    const found = [];
    keys.forEach((key, index) => {
      const which = keys.length > 1 ? `key ${index + 1}` : "the key";
      if (key.toUpperCase().startsWith("AGE-SECRET-KEY-"))
        throw new ValueProblem(
          `${which} is a secret key (AGE-SECRET-KEY-…): it must never be on the stick ` +
            "nor on the box, or the box could read its own backups",
          "remove it, keep it safe on your own computer, and give its public key: " +
            "the `# public key: age1…` line age-keygen printed"
        );
      const text = key.toLowerCase();
      if (!/^age1[02-9ac-hj-np-z]{58}$/.test(text)) throw new ValueProblem(`${which} is not an age public key (age1…)`, RECIPIENT_HINT);
      if (!bech32Valid(text))
        throw new ValueProblem(
          `${which} is not an age public key: a character is wrong or missing`,
          "copy the whole `age1…` line again (its last characters are a checksum)"
        );
      if (!found.includes(text)) found.push(text);
    });
    return found.join(" ");
  }

  function checkBackupDir(value) {
    if ([...value].some((c) => c.charCodeAt(0) < 32 || c.charCodeAt(0) === 127) || [...value].length > D.max_path)
      throw new ValueProblem(
        "not a path: it holds a control character or is too long",
        "write the directory as an absolute path, e.g. /srv/backup"
      );
    if (!value.startsWith("/"))
      throw new ValueProblem("not an absolute path", "write the whole path from /, e.g. /srv/backup or /mnt/second-disk/clawdie");
    const parts = value.split("/").filter((p) => p !== "" && p !== ".");
    if (parts.includes("..")) throw new ValueProblem("a path with .. in it", "write the directory it ends at, from /");
    if (!parts.length)
      throw new ValueProblem("the whole disk (/) is not a backup directory", "name a directory of its own, e.g. /srv/backup, best on a second disk");
    const path = "/" + parts.join("/");
    for (const refused of D.backup_dir_refused) {
      if (path === refused || path.startsWith(refused + "/"))
        throw new ValueProblem(
          `${refused} is not kept on a disk: a backup there is gone at the next reboot`,
          "name a directory on a disk, e.g. /srv/backup, best on a second disk"
        );
    }
    return path;
  }

  // --- model.py: each key's rule, and the rules about keys that come together -----------------
  const RULES = {
    OPENROUTER_API_KEY: checkOpenrouterKey,
    TELEGRAM_BOT_TOKEN: checkBotToken,
    TELEGRAM_ADMIN_ID: checkAdminId,
    ASSISTANT_NAME: checkAssistantName,
    PROFILE: checkProfile,
    TIMEZONE: checkTimezone,
    HOSTNAME: checkHostname,
    LOCALE: checkLocale,
    KEYMAP: checkKeymap,
    OPERATOR_EMAIL: checkEmail,
    OPERATOR_PASSWORD: checkPassword,
    SSH_AUTHORIZED_KEY: checkSshKey,
    CLAWDIE_USER_PASSWORD: checkPassword,
    SERVICE_ACCOUNT: checkAccount,
    AGENT_DOMAIN: checkDomain,
    PI_TUI_PROVIDER: checkProvider,
    PI_TUI_MODEL: checkModelName,
    LLM_FALLBACK_PROVIDER: checkProvider,
    LLM_FALLBACK_MODEL: checkModelName,
    AGENT_COMPACTION_PROVIDER: checkProvider,
    AGENT_COMPACTION_MODEL: checkModelName,
    LLM_FALLBACK_DEFAULT_COOLDOWN_SECONDS: checkCooldown,
    OPENAI_API_KEY: (v) => checkApiKey(v, "sk-", "OpenAI"),
    ANTHROPIC_API_KEY: (v) => checkApiKey(v, "sk-ant-", "Anthropic"),
    ZAI_API_KEY: (v) => checkApiKey(v, "", "Z.ai"),
    DEEPSEEK_API_KEY: (v) => checkApiKey(v, "sk-", "DeepSeek"),
    WIFI_SSID: checkWifiSsid,
    WIFI_PASSWORD: checkWifiPassword,
    WIFI_COUNTRY: checkWifiCountry,
    NET_ADDRESS: checkNetAddress,
    NET_GATEWAY: checkNetGateway,
    NET_DNS: checkNetDns,
    UPDATE_WINDOW: checkUpdateWindow,
    UPDATES: checkUpdates,
    UPDATE_CHANNEL: checkUpdateChannel,
    BACKUP_RECIPIENT: checkBackupRecipient,
    BACKUP_DIR: checkBackupDir,
    INSTALL_MODE: checkInstallMode,
    INSTALL_FINGERPRINT: checkFingerprint,
    ADOPT_CODE: checkAdoptCode,
    ALLOW_IDENTITY_CHANGE: checkYesNo,
    TARGET_DISK: checkTargetDisk,
    ERASE_TARGET_DISK: checkYesNo,
    SEED_SCRUB: checkYesNo,
    BACKUP_IDENTITY: checkBackupIdentity,
    BACKUP_FILE: checkBackupFile,
    TENANT_ID: (v) => v,
  };
  const fieldProblem = (key, message, hint, because) => ({ key, message, hint: hint || "", because: because || null });

  function validateField(key, value) {
    // {value} (as the platform receives it: text, digits, yes/no) or {problem}
    try {
      return { value: RULES[key](value) };
    } catch (err) {
      if (!(err instanceof ValueProblem)) throw err;
      return { problem: fieldProblem(key, err.message, err.hint) };
    }
  }
  function presenceErrors(present, data) {
    const errors = ["TELEGRAM_BOT_TOKEN", "TELEGRAM_ADMIN_ID"]
      .filter((k) => !present.has(k))
      .map((k) => fieldProblem(k, "required, but not set", D.where_to_get[k]));
    // providers
    const profileName = String(data.PROFILE || MAPPING.default_profile).toLowerCase();
    const profile = PROFILES.get(profileName) || PROFILES.get(MAPPING.default_profile);
    const needed = new Map();
    for (const [role, providerKey, modelKey] of D.role_keys) {
      let provider;
      let why;
      if (present.has(providerKey)) {
        provider = String(data[providerKey]).toLowerCase();
        why = `${providerKey}=${provider}`;
        if (!present.has(modelKey)) {
          errors.push(
            fieldProblem(modelKey, `required because ${providerKey} is set`, "a model name belongs to its provider; set both lines", providerKey)
          );
        }
      } else {
        provider = profile[role][0];
        why = `profile ${profile.name} uses it`;
      }
      if (!needed.has(provider)) needed.set(provider, why);
    }
    for (const [provider, why] of needed) {
      const spec = PROVIDERS.get(provider);
      if (spec !== undefined && !present.has(spec.key)) {
        const hint = D.where_to_get[spec.key] || `add a ${spec.key}= line with your ${spec.label} key`;
        errors.push(fieldProblem(spec.key, `required (${why})`, hint));
      }
    }
    // network
    const wifiGiven = D.wifi_keys.filter((k) => present.has(k));
    if (wifiGiven.length) {
      for (const key of D.wifi_keys) {
        if (!present.has(key))
          errors.push(fieldProblem(key, `required because ${wifiGiven[0]} is set`, D.wifi_hints[key], wifiGiven[0]));
      }
    }
    for (const [have, need, hint] of [
      ["NET_ADDRESS", "NET_GATEWAY", "the router's address, e.g. 192.168.1.1"],
      ["NET_GATEWAY", "NET_ADDRESS", "this box's address and network size, e.g. 192.168.1.50/24"],
    ]) {
      if (present.has(have) && !present.has(need)) errors.push(fieldProblem(need, `required because ${have} is set`, hint, have));
    }
    let networkDone = false;
    if (present.has("NET_ADDRESS") && present.has("NET_GATEWAY")) {
      let address;
      let gateway;
      try {
        address = checkNetAddress(String(data.NET_ADDRESS));
        gateway = checkNetGateway(String(data.NET_GATEWAY));
      } catch (err) {
        if (!(err instanceof ValueProblem)) throw err;
        networkDone = true;
      }
      if (!networkDone) {
        const p = gatewayProblem(address, gateway);
        if (p !== null) errors.push(fieldProblem("NET_GATEWAY", p.message, p.hint || ""));
      }
    }
    for (const [have, need] of [
      ["OPERATOR_EMAIL", "OPERATOR_PASSWORD"],
      ["OPERATOR_PASSWORD", "OPERATOR_EMAIL"],
    ]) {
      if (present.has(have) && !present.has(need)) {
        errors.push(
          fieldProblem(
            need,
            `required because ${have} is set`,
            "set both, or neither (the dashboard then stays locked until set-operator)",
            have
          )
        );
      }
    }
    if (present.has("ERASE_TARGET_DISK") && !present.has("TARGET_DISK") && String(data.ERASE_TARGET_DISK).toLowerCase() === "yes") {
      errors.push(
        fieldProblem("TARGET_DISK", "required because ERASE_TARGET_DISK=yes", "name the disk to erase, e.g. TARGET_DISK=serial:…", "ERASE_TARGET_DISK")
      );
    }
    if (stripSpace(String(data.INSTALL_MODE || "")).toLowerCase() === "adopt" && !present.has("INSTALL_FINGERPRINT")) {
      errors.push(
        fieldProblem(
          "INSTALL_FINGERPRINT",
          "required because INSTALL_MODE=adopt",
          "copy the 8 characters shown as Fingerprint on the box's login screen, in its " +
            "install summary or on its receipt: a stick made for one box cannot change another",
          "INSTALL_MODE"
        )
      );
    }
    if (present.has("TENANT_ID")) {
      errors.push(fieldProblem("TENANT_ID", "additional tenants are not set up by first boot", "remove this line; add tenants after the installation"));
    }
    return errors;
  }

  // --- resolve.py / resolved.py -----------------------------------------------------------------
  const source = (kind, detail, line) => ({ kind, detail: detail || "", line: line === undefined ? null : line });
  function describe(s) {
    if (s.kind === "line") return `setup.txt line ${s.line}`;
    if (s.kind === "profile") return `profile ${s.detail}`;
    if (s.kind === "derived") return `derived from ${s.detail}`;
    if (s.kind === "installed") return "kept from the installation";
    return s.kind;
  }
  function maskSecret(key, value) {
    if (D.fully_hidden_keys.includes(key) || plen(value) < 16) return "(set, hidden)";
    return `${cps(value).slice(0, 4).join("")}… (hidden, ${plen(value)} characters)`;
  }
  const mask = (s) => (s.secret ? maskSecret(s.key, s.value) : s.value);
  function shorten(text, width) {
    const c = cps(text);
    if (c.length <= width) return text;
    const head = Math.floor((width - 1) / 2);
    return c.slice(0, head).join("") + "…" + c.slice(c.length - (width - 1 - head)).join("");
  }
  function problemOrder(a, b) {
    const ka = [a.line !== null ? 0 : 1, a.line || 0];
    const kb = [b.line !== null ? 0 : 1, b.line || 0];
    if (ka[0] !== kb[0]) return ka[0] - kb[0];
    if (ka[1] !== kb[1]) return ka[1] - kb[1];
    const x = a.key || "";
    const y = b.key || "";
    return x < y ? -1 : x > y ? 1 : 0;
  }
  function resolveSeed(model, given) {
    const settings = [];
    const record = (key, value, src) => settings.push({ key, value, secret: SECRET.has(key), source: src });
    const take = (key, dflt, src) => {
      if (model[key] === undefined) {
        if (dflt !== undefined && dflt !== null) record(key, dflt, src || source("default"));
        return dflt === undefined ? null : dflt;
      }
      record(key, model[key], given[key]);
      return model[key];
    };
    const named = "ASSISTANT_NAME" in given;
    const name = take("ASSISTANT_NAME", D.default_assistant_name);
    const hostname = take(
      "HOSTNAME",
      named ? deriveHostname(name) : D.default_hostname,
      named ? source("derived", "ASSISTANT_NAME") : source("default")
    );
    take("AGENT_DOMAIN", `${hostname}.local`, source("derived", "HOSTNAME"));
    take("TIMEZONE", "UTC");
    take("LOCALE", "en_US.UTF-8");
    take("KEYMAP", "us");
    take("SERVICE_ACCOUNT", D.default_service_account);
    take("TELEGRAM_BOT_TOKEN");
    take("TELEGRAM_ADMIN_ID");
    // models
    const profileName = take("PROFILE", MAPPING.default_profile);
    const profile = PROFILES.get(profileName);
    const fromProfile = source("profile", `${profile.name} (mapping v${MAPPING.version})`);
    const text = {};
    const roles = {};
    for (const [role, providerKey, modelKey] of D.role_keys) {
      const choice = profile[role];
      for (const [key, dflt] of [
        [providerKey, choice[0]],
        [modelKey, choice[1]],
      ]) {
        const [value, src] = model[key] !== undefined ? [model[key], given[key]] : [dflt, fromProfile];
        settings.push({ key, value, secret: false, source: src });
        text[key] = value;
      }
      roles[role] = [text[providerKey], text[modelKey]];
    }
    const cooldownKey = D.cooldown_key;
    const [cooldown, cooldownSource] =
      model[cooldownKey] !== undefined ? [model[cooldownKey], given[cooldownKey]] : [String(profile.cooldown), fromProfile];
    settings.push({ key: cooldownKey, value: cooldown, secret: false, source: cooldownSource });
    const used = uniqSorted(Object.values(roles).map((c) => c[0]));
    settings.push({ key: "LLM_PROVIDERS", value: used.join(","), secret: false, source: source("derived", "the model settings") });
    for (const p of used) take(PROVIDERS.get(p).key);
    settings.push({ key: "PROFILE_MAPPING_VERSION", value: String(MAPPING.version), secret: false, source: source("derived", "profiles.toml") });
    for (const key of ["WIFI_SSID", "WIFI_PASSWORD", "WIFI_COUNTRY", "NET_ADDRESS", "NET_GATEWAY", "NET_DNS"]) take(key);
    take("UPDATE_WINDOW", D.default_window);
    take("UPDATES", "on");
    for (const key of ["UPDATE_CHANNEL", "BACKUP_RECIPIENT", "BACKUP_DIR"]) take(key);
    for (const key of ["OPERATOR_EMAIL", "OPERATOR_PASSWORD", "SSH_AUTHORIZED_KEY", "CLAWDIE_USER_PASSWORD"]) take(key);
    const mode = take("INSTALL_MODE", "fresh");
    take("TARGET_DISK");
    take("ERASE_TARGET_DISK", "no");
    take("SEED_SCRUB", "no");
    take("INSTALL_FINGERPRINT");
    take("ADOPT_CODE");
    take("ALLOW_IDENTITY_CHANGE", mode === "adopt" ? "no" : null);
    return { settings, roles, used };
  }

  function warningsOf(model, given, resolved) {
    const notes = [];
    const lineOf = (key) => (key in given ? given[key].line : null);
    const after =
      model.SEED_SCRUB === "yes"
        ? "SEED_SCRUB=yes replaces it after a successful install"
        : "after the last install, reformat the stick or delete setup.txt (or set SEED_SCRUB=yes)";
    for (const key of D.plaintext_password_keys) {
      if (key in given && given[key].kind === "line") notes.push(note(lineOf(key), `${key}: a plaintext password is on the stick; ${after}`));
    }
    if (model.ERASE_TARGET_DISK === "yes" && model.TARGET_DISK && !isStableDiskName(model.TARGET_DISK)) {
      notes.push(
        note(
          lineOf("TARGET_DISK"),
          "TARGET_DISK: a kernel name like /dev/sda can be another disk on another " +
            "machine; the installer will not erase it unattended: use " +
            "TARGET_DISK=/dev/disk/by-id/… or serial:… (the installer's console lists them)"
        )
      );
    }
    if (model.INSTALL_MODE !== "adopt") {
      for (const key of ["INSTALL_FINGERPRINT", "ADOPT_CODE", "ALLOW_IDENTITY_CHANGE"]) {
        if (key in given)
          notes.push(note(lineOf(key), `${key}: only used with INSTALL_MODE=adopt; this seed installs fresh, so the line has no effect`));
      }
    }
    for (const key of D.restore_keys) {
      if (key in given)
        notes.push(note(lineOf(key), `${key}: only used with INSTALL_MODE=restore; this seed does not restore, so the line has no effect`));
    }
    if ("CLAWDIE_USER_PASSWORD" in given) {
      notes.push(
        note(
          lineOf("CLAWDIE_USER_PASSWORD"),
          "CLAWDIE_USER_PASSWORD turns on password login over SSH; an SSH key (SSH_AUTHORIZED_KEY) is safer"
        )
      );
    }
    if (!("ASSISTANT_NAME" in given)) {
      notes.push(note(null, `ASSISTANT_NAME is not set: the assistant will be called ${D.default_assistant_name}`));
    } else if (!("HOSTNAME" in given) && deriveHostname(model.ASSISTANT_NAME || "") === D.default_hostname) {
      notes.push(
        note(
          lineOf("ASSISTANT_NAME"),
          `HOSTNAME: ASSISTANT_NAME gives no usable host name; using ${D.default_hostname} (set HOSTNAME= to choose one)`
        )
      );
    }
    const [pp, pm] = resolved.roles.primary;
    const [fp, fm] = resolved.roles.fallback;
    const line = lineOf("LLM_FALLBACK_MODEL") || lineOf("PI_TUI_MODEL");
    if (fm.endsWith(":free")) {
      notes.push(
        note(
          line,
          `LLM_FALLBACK_MODEL: the fallback model ${fm} is a free tier: free models rate-limit ` +
            "silently and the assistant looks dead when it is used"
        )
      );
    }
    if (fp === pp && fm === pm) {
      notes.push(
        note(
          line,
          `LLM_FALLBACK_MODEL: the fallback is the same as the primary (${pp} ${pm}); when the primary fails, the fallback fails too`
        )
      );
    }
    for (const provider of MAPPING.providers) {
      if (provider.key in given && !resolved.used.includes(provider.name)) {
        notes.push(
          note(
            lineOf(provider.key),
            `${provider.key}: no model setting uses ${provider.label}; the key is not used and will not be stored`
          )
        );
      }
    }
    return notes;
  }

  function located(p, lines, commented) {
    let message = p.message;
    let hint = p.hint || null;
    if (p.because && lines.has(p.because)) message = `${message} (line ${lines.get(p.because)})`;
    let line = lines.has(p.key || "") ? lines.get(p.key || "") : null;
    if (line === null && p.key !== null && commented.has(p.key)) {
      line = commented.get(p.key);
      hint = `line ${line} is a comment: remove the '#' at its start to use ${p.key}`;
    }
    return problem(line, p.key, message, hint);
  }

  function givenOf(text) {
    const given = {};
    for (const e of text.entries) if (e.value) given[e.key] = { value: e.value, kind: "line", line: e.line };
    return given;
  }
  const isBlank = (data) => data.every((b) => [0x20, 0x09, 0x0a, 0x0d, 0x0b, 0x0c].includes(b));

  function checkSeed(data, name) {
    const text = parseSeed(data, KNOWN);
    const given = givenOf(text);
    const lines = new Map(text.entries.map((e) => [e.key, e.line]));
    const problems = [...text.problems];
    const repairs = [...text.repairs];
    const warnings = isBlank(data) ? [note(null, `${name} is empty: was it saved?`)] : [];
    warnings.push(...text.warnings);
    const already = new Set([...text.problems.filter((p) => p.key).map((p) => p.key), ...text.problems.filter((p) => p.suggests).map((p) => p.suggests)]);
    const model = {};
    const errors = [];
    for (const f of FIELDS) {
      if (!(f.key in given)) continue;
      const r = validateField(f.key, given[f.key].value);
      if (r.problem) errors.push(r.problem);
      else model[f.key] = r.value;
    }
    const data_ = Object.fromEntries(Object.entries(given).map(([k, g]) => [k, g.value]));
    errors.push(...presenceErrors(new Set(Object.keys(given)), data_));
    for (const p of errors) {
      if (!already.has(p.key) || p.key in given) problems.push(located(p, lines, text.commented));
    }
    let settings = [];
    if (!errors.length) {
      const sources = Object.fromEntries(Object.entries(given).map(([k, g]) => [k, source("line", "", g.line)]));
      const resolved = resolveSeed(model, sources);
      warnings.push(...warningsOf(model, given, resolved));
      for (const key of D.note_normalised) {
        if (key in given && model[key] !== given[key].value) repairs.push(note(given[key].line, `${key}: read as ${model[key]}`));
      }
      if (!problems.length) settings = resolved.settings;
    }
    repairs.sort((a, b) => (a.line || 0) - (b.line || 0));
    problems.sort(problemOrder);
    return { name, problems, warnings, repairs, settings, encoding: text.encoding, adoptOnly: false, given };
  }

  function checkAdoptSeed(data, name) {
    const text = parseSeed(data, KNOWN);
    const given = givenOf(text);
    const problems = [...text.problems];
    for (const [key, g] of Object.entries(given)) {
      const r = validateField(key, g.value);
      if (r.problem) problems.push(problem(g.line, key, r.problem.message, r.problem.hint || null));
    }
    for (const [key, hint] of Object.entries(D.adopt_needs)) {
      if (!(key in given)) problems.push(problem(null, key, `required because INSTALL_MODE=${seedMode(data)}`, hint));
    }
    for (const [have, need] of [
      ["OPERATOR_EMAIL", "OPERATOR_PASSWORD"],
      ["OPERATOR_PASSWORD", "OPERATOR_EMAIL"],
    ]) {
      if (have in given && !(need in given)) {
        problems.push(
          problem(given[have].line, need, `required because ${have} is set`, "adopt sets the dashboard's operator only when it has none: set both")
        );
      }
    }
    if ("TENANT_ID" in given) problems.push(problem(given.TENANT_ID.line, "TENANT_ID", "additional tenants are not set up by adopt", "remove this line"));
    problems.sort(problemOrder);
    return { name, problems, warnings: [], repairs: [...text.repairs], settings: [], encoding: text.encoding, adoptOnly: true, given };
  }

  // a restore seed: the page cannot see the files next to setup.txt; `check` on the stick does
  function checkRestoreSeed(data, name) {
    const text = parseSeed(data, KNOWN);
    const given = givenOf(text);
    const problems = [...text.problems];
    for (const [key, g] of Object.entries(given)) {
      const r = validateField(key, g.value);
      if (r.problem) problems.push(problem(g.line, key, r.problem.message, r.problem.hint || null));
    }
    for (const [key, hint] of Object.entries(D.restore_needs)) {
      if (!(key in given)) problems.push(problem(null, key, "required because INSTALL_MODE=restore", hint));
    }
    const warnings = [];
    for (const [key, g] of Object.entries(given)) {
      if (!D.restore_keys.includes(key) && !D.restore_install_keys.includes(key))
        warnings.push(note(g.line, `${key}: a restore takes this from the backup; the line has no effect`));
    }
    problems.sort(problemOrder);
    return { name, problems, warnings, repairs: [...text.repairs], settings: [], encoding: text.encoding, adoptOnly: false, restoreOnly: true, given };
  }

  function seedMode(data) {
    try {
      const entry = parseSeed(data, KNOWN).entries.find((e) => e.key === "INSTALL_MODE");
      return entry && entry.value ? stripSpace(entry.value).toLowerCase() : "fresh";
    } catch (err) {
      if (err instanceof Unreadable) return "fresh";
      throw err;
    }
  }

  // --- commands/check.py: the report ------------------------------------------------------------
  function fileWarnings(name) {
    // reader.choose_seed_name on the one file given
    if (name.toLowerCase() === `${D.seed_name}.txt`) {
      return [`using ${name}: the editor added a second .txt (Windows hides extensions); rename it to setup.txt`];
    }
    return [];
  }
  const valid = (r) => !r.problems.length && (r.settings.length > 0 || r.adoptOnly || r.restoreOnly);
  const where = (name, line) => (line !== null ? `${name}:${line}` : name);
  function renderProblem(p, name) {
    const head = `${where(name, p.line)}:${p.key ? ` ${p.key}:` : ""} ${p.message}`;
    return head + (p.hint ? `\n  hint: ${p.hint}` : "");
  }
  const renderNote = (n, name) => `${where(name, n.line)}: ${n.message}`;
  function adoptLines(r) {
    return Object.entries(r.given).map(([key, g]) => [key, SECRET.has(key) ? maskSecret(key, g.value) : g.value]);
  }
  function renderText(r, fileNotes, explain) {
    const name = r.name;
    const out = r.problems.map((p) => renderProblem(p, name));
    for (const n of [...fileNotes, ...r.warnings]) out.push(`warning: ${renderNote(n, name)}`);
    if (explain) for (const n of r.repairs) out.push(`note: ${renderNote(n, name)}`);
    if (explain && r.settings.length) {
      out.push(`\nresolved values (profile mapping v${MAPPING.version}):`);
      const rows = r.settings.map((s) => [s.key, shorten(mask(s), 40), describe(s.source)]);
      const kw = Math.max(...rows.map((x) => plen(x[0])));
      const vw = Math.max(...rows.map((x) => plen(x[1])));
      for (const [k, v, src] of rows) out.push(`  ${pad(k, kw)}  ${pad(v, vw)}  [${src}]`);
    } else if (explain && r.adoptOnly) {
      out.push("\nan adopt seed: the box keeps every setting it leaves out; it sets:");
      for (const [k, v] of adoptLines(r)) out.push(`  ${k}=${v}`);
    } else if (explain && r.restoreOnly) {
      out.push("\na restore seed: the backup brings every setting; it sets:");
      for (const [k, v] of adoptLines(r)) out.push(`  ${k}=${v}`);
    } else if (explain) {
      out.push("\nno resolved values: fix the problems above first");
    }
    if (valid(r) && r.adoptOnly) out.push(`${name}: valid adopt seed (the box it names fills in the rest)`);
    else if (valid(r) && r.restoreOnly) out.push(`${name}: valid restore seed (restores the backup)`);
    else if (valid(r)) out.push(`${name}: valid` + (r.warnings.length ? ` (${r.warnings.length} warning(s))` : ""));
    else out.push(`${name}: ${r.problems.length} problem(s) to fix`);
    return out.join("\n") + "\n";
  }
  function settingJson(s) {
    const src = { kind: s.source.kind, text: describe(s.source) };
    if (s.source.line !== null) src.line = s.source.line;
    else if (s.source.detail) src.from = s.source.detail;
    return { key: s.key, value: mask(s), secret: s.secret, source: src };
  }
  function renderJson(r, fileNotes) {
    const n = (x) => ({ line: x.line, message: x.message });
    return {
      format: "clawdie-setup-check/1",
      file: r.name,
      valid: valid(r),
      status: valid(r) ? "ok" : "failed",
      encoding: r.encoding,
      problems: r.problems.map((p) => ({ line: p.line, key: p.key, message: p.message, hint: p.hint })),
      warnings: [...fileNotes, ...r.warnings].map(n),
      repairs: r.repairs.map(n),
      mapping_version: MAPPING.version,
      settings: r.settings.map(settingJson),
    };
  }

  // The page's one entry: bytes of a file and its name -> the report, as `check` gives it.
  function checkFile(bytes, name) {
    name = name || D.seed_name;
    try {
      const mode = seedMode(bytes);
      const r =
        mode === "adopt" || mode === "reset"
          ? checkAdoptSeed(bytes, name)
          : mode === "restore"
            ? checkRestoreSeed(bytes, name)
            : checkSeed(bytes, name);
      const fileNotes = fileWarnings(name).map((w) => note(null, w));
      return {
        valid: valid(r),
        adoptOnly: r.adoptOnly,
        json: renderJson(r, fileNotes),
        text: renderText(r, fileNotes, false),
        explain: renderText(r, fileNotes, true),
      };
    } catch (err) {
      if (!(err instanceof Unreadable)) throw err;
      return { unreadable: { message: err.message, hint: err.hint } };
    }
  }

  root.ClawdieCheck = { checkFile, fields: FIELDS, seedName: D.seed_name };
})(typeof window !== "undefined" ? window : globalThis);
