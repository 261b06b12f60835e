//! Source rewrites that make regorus read Gatekeeper's Rego as OPA does.
//!
//! Three places where regorus 0.14 and OPA disagree on templates that pass Gatekeeper's own
//! suites, each rewritten into Rego both engines read alike:
//! - a term ending one line and a `(` starting the next: OPA separates the two expressions
//!   (a call needs its `(` right after the name), regorus reads a call. A `;` goes between.
//! - v0 chained bodies `head { a } { b }`: OPA reads two definitions of `head`, regorus
//!   refuses them. Each extra body gets its own copy of the head.
//! - `not f(x.missing)`: OPA binds every reference argument first, so an undefined argument
//!   makes the expression undefined; regorus makes the negation true, which would report a
//!   violation Gatekeeper does not. Reference arguments are bound on the line before.
//!
//! The rewrites work on tokens (strings, raw strings and comments are skipped), change only
//! the shapes above, and keep line numbers, so compiler messages still point at the template.

/// One lexical piece of Rego source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ident,
    Number,
    Str,
    Newline,
    Punct(u8),
}

#[derive(Debug, Clone, Copy)]
struct Tok {
    kind: Kind,
    start: usize,
    end: usize,
}

fn lex(src: &str) -> Vec<Tok> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let kind = match c {
            b'\n' => {
                i += 1;
                Kind::Newline
            }
            c if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' && b[i] != b'\n' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(b.len());
                Kind::Str
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
                i = (i + 1).min(b.len());
                Kind::Str
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                Kind::Ident
            }
            c if c.is_ascii_digit() => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
                Kind::Number
            }
            c => {
                // Multi-byte UTF-8 only appears in strings and comments in valid Rego; step
                // over a whole character so slicing stays on boundaries.
                i += src[i..].chars().next().map_or(1, char::len_utf8);
                Kind::Punct(c)
            }
        };
        out.push(Tok {
            kind,
            start,
            end: i.min(b.len()),
        });
    }
    out
}

fn text<'a>(src: &'a str, t: &Tok) -> &'a str {
    &src[t.start..t.end]
}

/// Keywords that never end a term.
const KEYWORDS: &[&str] = &[
    "not", "some", "else", "if", "contains", "in", "with", "as", "default", "every", "import",
    "package",
];

fn ends_term(src: &str, t: &Tok) -> bool {
    match t.kind {
        Kind::Ident => !KEYWORDS.contains(&text(src, t)),
        Kind::Number | Kind::Str => true,
        Kind::Punct(c) => matches!(c, b')' | b']' | b'}'),
        Kind::Newline => false,
    }
}

/// Insertions at byte offsets, applied back to front.
fn apply(src: &str, mut edits: Vec<(usize, usize, String)>) -> String {
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut out = src.to_string();
    for (at, remove, insert) in edits {
        out.replace_range(at..at + remove, &insert);
    }
    out
}

/// `a` at the end of a line and `(b)` on the next: two expressions, as OPA reads them.
pub fn separate_newline_parens(src: &str) -> String {
    let toks = lex(src);
    let mut edits = Vec::new();
    let mut stack: Vec<u8> = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        match t.kind {
            Kind::Punct(c @ (b'(' | b'[' | b'{')) => {
                if c == b'(' && stack.last() == Some(&b'{') {
                    let mut j = i;
                    let mut newline = false;
                    while j > 0 && toks[j - 1].kind == Kind::Newline {
                        newline = true;
                        j -= 1;
                    }
                    if newline && j > 0 && ends_term(src, &toks[j - 1]) {
                        edits.push((toks[j - 1].end, 0, ";".to_string()));
                    }
                }
                stack.push(c);
            }
            Kind::Punct(b')' | b']' | b'}') => {
                stack.pop();
            }
            _ => {}
        }
    }
    apply(src, edits)
}

/// v0 `head { a } { b }` → `head { a } head { b }`.
pub fn split_chained_bodies(src: &str) -> String {
    let toks = lex(src);
    let mut edits = Vec::new();
    let mut depth = 0usize;
    // First token of the current top-level item, the head of the last body opened at the top,
    // and whether the last token closed such a body.
    let mut item_start: Option<usize> = None;
    let mut head: Option<(usize, usize)> = None;
    let mut body_open = false;
    let mut after_body = false;
    let mut prev: Option<Tok> = None;
    for t in &toks {
        if depth == 0 && t.kind == Kind::Newline {
            continue;
        }
        match t.kind {
            Kind::Punct(b'{') if depth == 0 => {
                if after_body {
                    if let Some((s, e)) = head {
                        edits.push((t.start, 0, format!("{} ", src[s..e].trim_end())));
                    }
                    body_open = true;
                } else {
                    let value = prev.is_some_and(|p| {
                        matches!(p.kind, Kind::Punct(b'=' | b',' | b'(' | b'[' | b'|' | b':'))
                    });
                    body_open = !value;
                    if body_open {
                        head = item_start.map(|s| (s, t.start));
                    }
                }
                depth += 1;
                after_body = false;
            }
            Kind::Punct(b'(' | b'[' | b'{') => {
                if depth == 0 && item_start.is_none() {
                    item_start = Some(t.start);
                }
                depth += 1;
                after_body = false;
            }
            Kind::Punct(b')' | b']' | b'}') => {
                depth = depth.saturating_sub(1);
                after_body = depth == 0 && t.kind == Kind::Punct(b'}') && body_open;
                if depth == 0 && t.kind == Kind::Punct(b'}') {
                    body_open = false;
                }
            }
            _ if depth == 0 => {
                if after_body || item_start.is_none() || ends_item(prev, t) {
                    item_start = Some(t.start);
                }
                after_body = false;
            }
            _ => {}
        }
        prev = Some(*t);
    }
    apply(src, edits)
}

/// Whether `t` starts a new top-level item after `prev` (the token before it, newlines
/// skipped): a name right after a complete term on an earlier line.
fn ends_item(prev: Option<Tok>, t: &Tok) -> bool {
    let Some(p) = prev else { return true };
    t.kind == Kind::Ident
        && matches!(
            p.kind,
            Kind::Ident | Kind::Number | Kind::Str | Kind::Punct(b')' | b']' | b'}')
        )
}

/// `not f(a, x.y)` → `__bw_arg0 := x.y; not f(a, __bw_arg0)`.
pub fn hoist_negated_call_args(src: &str) -> String {
    let toks = lex(src);
    let mut edits = Vec::new();
    let mut n = 0usize;
    for i in 0..toks.len() {
        if toks[i].kind != Kind::Ident || text(src, &toks[i]) != "not" {
            continue;
        }
        let starts_statement = i == 0
            || matches!(
                toks[i - 1].kind,
                Kind::Newline | Kind::Punct(b';' | b'{' | b'|')
            );
        if !starts_statement {
            continue;
        }
        let Some((open, close)) = call_after(&toks, i + 1) else {
            continue;
        };
        // The negation must end at the call: no `with`, comparison or other operator after it.
        let next = toks.get(close + 1).map(|t| t.kind);
        if !matches!(
            next,
            None | Some(Kind::Newline | Kind::Punct(b';' | b'}' | b']'))
        ) {
            continue;
        }
        let mut binds = Vec::new();
        for (s, e) in arguments(&toks, open, close) {
            let arg = src[s..e].trim();
            if is_plain_ref(arg) {
                let var = format!("__bw_arg{n}");
                n += 1;
                binds.push(format!("{var} := {arg}; "));
                let lead = src[s..e].len() - src[s..e].trim_start().len();
                let trail = src[s..e].len() - src[s..e].trim_end().len();
                edits.push((s + lead, e - s - lead - trail, var));
            }
        }
        if !binds.is_empty() {
            edits.push((toks[i].start, 0, binds.concat()));
        }
    }
    apply(src, edits)
}

/// A call `name.path(` starting at token `from`: the indices of its `(` and matching `)`.
fn call_after(toks: &[Tok], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    loop {
        if toks.get(i)?.kind != Kind::Ident {
            return None;
        }
        i += 1;
        match toks.get(i)?.kind {
            Kind::Punct(b'.') => i += 1,
            Kind::Punct(b'(') if toks[i].start == toks[i - 1].end => break,
            _ => return None,
        }
    }
    let open = i;
    let mut depth = 0usize;
    for (j, t) in toks.iter().enumerate().skip(open) {
        match t.kind {
            Kind::Punct(b'(' | b'[' | b'{') => depth += 1,
            Kind::Punct(b')' | b']' | b'}') => {
                depth -= 1;
                if depth == 0 {
                    return (t.kind == Kind::Punct(b')')).then_some((open, j));
                }
            }
            _ => {}
        }
    }
    None
}

/// The byte ranges of a call's arguments between `open` and `close`.
fn arguments(toks: &[Tok], open: usize, close: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = toks[open].end;
    for t in &toks[open + 1..close] {
        match t.kind {
            Kind::Punct(b'(' | b'[' | b'{') => depth += 1,
            Kind::Punct(b')' | b']' | b'}') => depth = depth.saturating_sub(1),
            Kind::Punct(b',') if depth == 0 => {
                out.push((start, t.start));
                start = t.end;
            }
            _ => {}
        }
    }
    out.push((start, toks[close].start));
    out
}

/// `a.b.c` or `a["b"][0]`: a reference with a fixed path (no variables, no `_`), the only
/// kind whose binding cannot change what the negation iterates over.
fn is_plain_ref(arg: &str) -> bool {
    let b = arg.as_bytes();
    let ident = |i: &mut usize| {
        let s = *i;
        while *i < b.len() && (b[*i].is_ascii_alphanumeric() || b[*i] == b'_') {
            *i += 1;
        }
        *i > s && !b[s].is_ascii_digit() && &arg[s..*i] != "_"
    };
    let mut i = 0;
    if !ident(&mut i) {
        return false;
    }
    let mut parts = 0;
    while i < b.len() {
        match b[i] {
            b'.' => {
                i += 1;
                if !ident(&mut i) {
                    return false;
                }
            }
            b'[' => {
                let Some(close) = arg[i..].find(']') else {
                    return false;
                };
                let key = &arg[i + 1..i + close];
                let literal = (key.len() >= 2
                    && key.starts_with('"')
                    && key.ends_with('"')
                    && !key[1..key.len() - 1].contains(['"', '\\']))
                    || (!key.is_empty() && key.bytes().all(|c| c.is_ascii_digit()));
                if !literal {
                    return false;
                }
                i += close + 1;
            }
            _ => return false,
        }
        parts += 1;
    }
    parts > 0
}

/// The verbs of a Go format string: (byte range of each verb in the literal, its letter).
fn verbs(lit: &str) -> Vec<(usize, usize, char)> {
    let b = lit.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            i += 1;
            continue;
        }
        if b.get(i + 1) == Some(&b'%') {
            i += 2;
            continue;
        }
        let start = i;
        i += 1;
        while i < b.len() && (b"+-# 0.*[]".contains(&b[i]) || b[i].is_ascii_digit()) {
            i += 1;
        }
        if i < b.len() && b[i].is_ascii_alphabetic() {
            out.push((start, i + 1, b[i] as char));
            i += 1;
        }
    }
    out
}

/// `sprintf("%v and %v", [a])`: Go (and OPA) print `%!v(MISSING)` for a verb without an
/// argument and note extra arguments; regorus fails the call, which loses the violation. With
/// a literal format and a literal array, the format is rewritten to print what Go prints.
pub fn complete_sprintf_arguments(src: &str) -> String {
    let toks = lex(src);
    let mut edits = Vec::new();
    for i in 0..toks.len() {
        if toks[i].kind != Kind::Ident
            || text(src, &toks[i]) != "sprintf"
            || (i > 0 && toks[i - 1].kind == Kind::Punct(b'.'))
        {
            continue;
        }
        let Some((open, close)) = call_after(&toks, i) else {
            continue;
        };
        let args = arguments(&toks, open, close);
        if args.len() != 2 {
            continue;
        }
        let format = src[args[0].0..args[0].1].trim();
        let list = src[args[1].0..args[1].1].trim();
        let literal = format.len() >= 2 && format.starts_with('"') && format.ends_with('"');
        if !(literal && list.starts_with('[') && list.ends_with(']')) {
            continue;
        }
        let Some(ltok) = (open + 1..close)
            .find(|&k| toks[k].start >= args[1].0 && toks[k].kind == Kind::Punct(b'['))
        else {
            continue;
        };
        let Some(lclose) = matching(&toks, ltok) else {
            continue;
        };
        let given = if toks[ltok + 1..lclose]
            .iter()
            .all(|t| t.kind == Kind::Newline)
        {
            0
        } else {
            arguments(&toks, ltok, lclose).len()
        };
        let inner = &format[1..format.len() - 1];
        let found = verbs(inner);
        if found.len() == given {
            continue;
        }
        let mut fixed = String::new();
        let mut last = 0;
        for (n, (s, e, verb)) in found.iter().enumerate() {
            fixed.push_str(&inner[last..*s]);
            if n < given {
                fixed.push_str(&inner[*s..*e]);
            } else {
                fixed.push_str(&format!("%%!{verb}(MISSING)"));
            }
            last = *e;
        }
        fixed.push_str(&inner[last..]);
        if given > found.len() {
            let extra = vec!["%v"; given - found.len()].join(", ");
            fixed.push_str(&format!("%%!(EXTRA {extra})"));
        }
        let at = toks
            .iter()
            .position(|t| t.start >= args[0].0 && t.kind == Kind::Str);
        if let Some(t) = at.map(|k| toks[k]) {
            edits.push((t.start, t.end - t.start, format!("\"{fixed}\"")));
        }
    }
    apply(src, edits)
}

/// The index of the token closing the bracket opened at `open`.
fn matching(toks: &[Tok], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (j, t) in toks.iter().enumerate().skip(open) {
        match t.kind {
            Kind::Punct(b'(' | b'[' | b'{') => depth += 1,
            Kind::Punct(b')' | b']' | b'}') => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

/// Renames the top-level rule `from` (its heads: `from[`, `from contains`, `from(`, `from {`,
/// `from =`/`:=`) to `to`; references inside bodies are left alone.
pub fn rename_rule(src: &str, from: &str, to: &str) -> String {
    let toks = lex(src);
    let mut edits = Vec::new();
    let mut depth = 0usize;
    let mut line_start = true;
    for (i, t) in toks.iter().enumerate() {
        match t.kind {
            Kind::Newline => {
                if depth == 0 {
                    line_start = true;
                }
                continue;
            }
            Kind::Punct(b'(' | b'[' | b'{') => depth += 1,
            Kind::Punct(b')' | b']' | b'}') => depth = depth.saturating_sub(1),
            Kind::Ident if depth == 0 && line_start && text(src, t) == from => {
                let next = toks.get(i + 1);
                let head = next.is_some_and(|n| {
                    matches!(n.kind, Kind::Punct(b'[' | b'(' | b'{' | b'=' | b':'))
                        || (n.kind == Kind::Ident && matches!(text(src, n), "contains" | "if"))
                });
                if head {
                    edits.push((t.start, t.end - t.start, to.to_string()));
                }
            }
            _ => {}
        }
        line_start = false;
    }
    apply(src, edits)
}

/// Every rewrite; chained bodies only exist in Rego v0.
pub fn for_regorus(src: &str, v0: bool) -> String {
    let src = if v0 {
        split_chained_bodies(src)
    } else {
        src.to_string()
    };
    let src = complete_sprintf_arguments(&src);
    separate_newline_parens(&hoist_negated_call_args(&src))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_term_then_a_parenthesis_on_the_next_line_are_two_expressions() {
        let src = "package t\nr {\n  x := 5\n  x\n  (x - 1) >= 3\n}\n";
        assert_eq!(
            separate_newline_parens(src),
            "package t\nr {\n  x := 5\n  x;\n  (x - 1) >= 3\n}\n"
        );
        // Calls, arguments over several lines and parentheses after operators stay.
        for same in [
            "package t\nr {\n  f(1)\n}\n",
            "package t\nr {\n  f(1,\n    (2))\n}\n",
            "package t\nr {\n  x := 1 +\n  (2)\n}\n",
            "package t\nr {\n  not\n  (x)\n}\n",
            "package t\nr { x := \"a\n(\" }\n",
            "package t\nr {\n  x := 1 # a\n}\n",
        ] {
            assert_eq!(separate_newline_parens(same), same);
        }
    }

    #[test]
    fn chained_bodies_become_separate_definitions() {
        let src = "package t\nv[m] { m := \"a\" } { m := \"b\" }\n";
        assert_eq!(
            split_chained_bodies(src),
            "package t\nv[m] { m := \"a\" } v[m] { m := \"b\" }\n"
        );
        let src = "package t\nget(obj) = spec {\n  spec := 1\n} {\n  spec := 2\n}\n";
        assert_eq!(
            split_chained_bodies(src),
            "package t\nget(obj) = spec {\n  spec := 1\n} get(obj) = spec {\n  spec := 2\n}\n"
        );
        let src = "package t\nviolation[{\"msg\": m}] { m := \"a\" }\n{\n m := \"b\" }\n";
        assert_eq!(
            split_chained_bodies(src),
            "package t\nviolation[{\"msg\": m}] { m := \"a\" }\nviolation[{\"msg\": m}] {\n m := \"b\" }\n"
        );
        // A value that is an object, then a body; else chains; separate rules.
        for same in [
            "package t\np = {\"a\": 1} { true }\n",
            "package t\nf(x) = 1 { x > 1 } else = 2 { true }\n",
            "package t\na { true }\nb { true }\n",
            "package t\nx := {\"a\": 1}\ny := {1}\n",
        ] {
            assert_eq!(split_chained_bodies(same), same);
        }
        let src = "package t\np = {\"a\": 1} { true } { false }\n";
        assert_eq!(
            split_chained_bodies(src),
            "package t\np = {\"a\": 1} { true } p = {\"a\": 1} { false }\n"
        );
    }

    #[test]
    fn reference_arguments_of_negated_calls_are_bound_first() {
        let src = "package t\nn {\n  not f(p.rule, 1, p.ranges)\n}\n";
        assert_eq!(
            hoist_negated_call_args(src),
            "package t\nn {\n  __bw_arg0 := p.rule; __bw_arg1 := p.ranges; not f(__bw_arg0, 1, __bw_arg1)\n}\n"
        );
        let src = "package t\nn { x := [1 | not data.lib.ok(input.a[\"b\"][0])] }\n";
        assert_eq!(
            hoist_negated_call_args(src),
            "package t\nn { x := [1 | __bw_arg0 := input.a[\"b\"][0]; not data.lib.ok(__bw_arg0)] }\n"
        );
        // Wildcards, variables in paths, `with` and comparisons keep OPA's own reading.
        for same in [
            "package t\nn { not f(x[_]) }\n",
            "package t\nn { not f(x[i]) }\n",
            "package t\nn { not f(x.y) with input as {} }\n",
            "package t\nn { not f(x.y) == 1 }\n",
            "package t\nn { not x.y }\n",
            "package t\nn { not f(1, y) }\n",
            "package t\nn { y := not_f(x.y) }\n",
        ] {
            assert_eq!(hoist_negated_call_args(same), same);
        }
    }

    #[test]
    fn sprintf_prints_missing_and_extra_arguments_as_go_does() {
        let src = "package t\nm { msg := sprintf(\"%v <%v> at %d%%: %v\", [a, b]) }\n";
        assert_eq!(
            complete_sprintf_arguments(src),
            "package t\nm { msg := sprintf(\"%v <%v> at %%!d(MISSING)%%: %%!v(MISSING)\", [a, b]) }\n"
        );
        let src = "package t\nm { msg := sprintf(\"%v\", [a, f(b, c)]) }\n";
        assert_eq!(
            complete_sprintf_arguments(src),
            "package t\nm { msg := sprintf(\"%v%%!(EXTRA %v)\", [a, f(b, c)]) }\n"
        );
        for same in [
            "package t\nm { msg := sprintf(\"%v %.2f\", [a, b]) }\n",
            "package t\nm { msg := sprintf(fmt, [a]) }\n",
            "package t\nm { msg := sprintf(\"%v\", args) }\n",
            "package t\nm { msg := sprintf(\"none\", []) }\n",
        ] {
            assert_eq!(complete_sprintf_arguments(same), same);
        }
    }

    #[test]
    fn rule_heads_are_renamed_and_references_kept() {
        let src = "package t\nviolation[{\"msg\": m}] {\n  m := \"a\"\n}\nviolation contains x if { x := violation }\nviolationish { true }\n";
        assert_eq!(
            rename_rule(src, "violation", "inner"),
            "package t\ninner[{\"msg\": m}] {\n  m := \"a\"\n}\ninner contains x if { x := violation }\nviolationish { true }\n"
        );
    }

    #[test]
    fn hostile_source_does_not_panic() {
        for src in [
            "",
            "\"",
            "`",
            "not f(",
            "not f(a.b",
            "}}}{{{",
            "p { not f(\"é\", x.é) }",
            "# é\np { x\n(é) }",
            "v[x] { } {",
        ] {
            let _ = for_regorus(src, true);
        }
    }
}
