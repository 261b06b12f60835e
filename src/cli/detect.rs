//! `bulwark detect [FILE|-]`: run the detection engine over a file or standard input and print
//! what it finds, masked. Useful on its own (what sensitive data is in this dump?) and the way
//! the engine is tested from outside.

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::detect::{assess, Engine, Finding};

/// Largest input read (the engine itself has no limit; this keeps a mistaken `detect /dev/zero`
/// from eating the machine).
const MAX_INPUT: u64 = 1 << 30;

/// Input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Input {
    /// JSON if it parses, else NDJSON if every line does, else CSV by file name, else text.
    Auto,
    Json,
    Ndjson,
    Csv,
    Text,
    /// `application/x-www-form-urlencoded`.
    Form,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// One JSON object per finding (NDJSON).
    Json,
    /// One JSON array of all findings.
    JsonArray,
}

/// Flags of `bulwark detect`.
#[derive(Debug, Args)]
pub struct DetectArgs {
    /// The file to read; `-` or nothing for standard input.
    pub file: Option<PathBuf>,
    /// How to read the input.
    #[arg(long, value_enum, default_value = "auto")]
    pub input: Input,
    /// How to print findings.
    #[arg(long, value_enum, default_value = "json")]
    pub format: Output,
}

/// A finding as printed: the engine's fields plus the 1-based input line.
#[derive(serde::Serialize)]
struct Printed<'a> {
    #[serde(flatten)]
    finding: &'a Finding,
    line: usize,
}

/// Runs the detector; exit code 0 (findings are output, not failures).
pub fn run(cli: &super::Cli, a: &DetectArgs) -> anyhow::Result<i32> {
    let (data, name) = read_input(a.file.as_ref())?;
    let engine = engine(cli)?;
    let findings = detect(&engine, &data, a.input, &name);
    let lines = line_starts(&data);
    let printed: Vec<Printed> = findings
        .iter()
        .map(|f| Printed {
            finding: f,
            line: lines.partition_point(|s| *s <= f.offset),
        })
        .collect();
    let mut out = std::io::stdout().lock();
    match a.format {
        Output::Json => {
            for p in &printed {
                serde_json::to_writer(&mut out, p)?;
                out.write_all(b"\n")?;
            }
        }
        Output::JsonArray => {
            serde_json::to_writer_pretty(&mut out, &printed)?;
            out.write_all(b"\n")?;
        }
    }
    let assessment = assess(&findings);
    eprintln!(
        "{} findings; sensitivity {}{}",
        findings.len(),
        assessment
            .sensitivity
            .map(|s| format!("{s:?}"))
            .unwrap_or_else(|| "none".into()),
        if assessment.combinations.is_empty() {
            String::new()
        } else {
            format!("; combinations: {}", assessment.combinations.join(", "))
        }
    );
    Ok(0)
}

/// The engine with the configuration's custom types (`[[detect.custom]]`).
pub(super) fn engine(cli: &super::Cli) -> anyhow::Result<Engine> {
    let config = cli.load_config(None).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::detect::Engine::from_config(&config.detect)
        .map_err(|p| anyhow::anyhow!("{}", p.join("; ")))
}

fn read_input(file: Option<&PathBuf>) -> anyhow::Result<(Vec<u8>, String)> {
    let mut data = Vec::new();
    let name = match file {
        Some(p) if p.as_os_str() != "-" => {
            let f = std::fs::File::open(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            f.take(MAX_INPUT + 1).read_to_end(&mut data)?;
            p.display().to_string()
        }
        _ => {
            std::io::stdin()
                .lock()
                .take(MAX_INPUT + 1)
                .read_to_end(&mut data)?;
            "-".to_string()
        }
    };
    if data.len() as u64 > MAX_INPUT {
        anyhow::bail!("the input is larger than 1 GiB; split it");
    }
    Ok((data, name))
}

/// Byte offsets at which lines start (for 1-based line numbers).
fn line_starts(data: &[u8]) -> Vec<usize> {
    let mut v = vec![0];
    v.extend(memchr::memchr_iter(b'\n', data).map(|i| i + 1));
    v
}

/// Findings in `data` read as `input`.
pub fn detect(engine: &Engine, data: &[u8], input: Input, name: &str) -> Vec<Finding> {
    match input {
        Input::Json => engine.scan_json(data),
        Input::Ndjson => ndjson(engine, data),
        Input::Csv => csv(engine, data),
        Input::Text => engine.scan_text(data),
        Input::Form => engine.scan_form(data),
        Input::Auto => {
            let trimmed = data.trim_ascii_start();
            if trimmed.starts_with(b"{") || trimmed.starts_with(b"[") {
                if crate::detect::json::walk(data, &mut |_, _, _| {}).is_ok() {
                    return engine.scan_json(data);
                }
                let lines_are_json = data
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.trim_ascii().is_empty())
                    .all(|l| crate::detect::json::walk(l, &mut |_, _, _| {}).is_ok());
                if lines_are_json {
                    return ndjson(engine, data);
                }
            }
            if name.to_ascii_lowercase().ends_with(".csv") {
                return csv(engine, data);
            }
            engine.scan_text(data)
        }
    }
}

/// One JSON document per line; offsets are made absolute.
fn ndjson(engine: &Engine, data: &[u8]) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut start = 0;
    for line in data.split(|b| *b == b'\n') {
        for mut f in engine.scan_json(line) {
            f.offset += start;
            out.push(f);
        }
        start += line.len() + 1;
    }
    out
}

/// A header row names the columns; each cell is scanned as a field of its column, with the
/// path `$[row].column`.
fn csv(engine: &Engine, data: &[u8]) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut header: Option<Vec<String>> = None;
    let mut row = 0;
    for (cells, offsets) in csv_records(data) {
        let Some(names) = &header else {
            header = Some(
                cells
                    .iter()
                    .map(|c| String::from_utf8_lossy(c).trim().to_string())
                    .collect(),
            );
            continue;
        };
        for (i, cell) in cells.iter().enumerate() {
            let column = names
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("column{}", i + 1));
            for mut f in engine.scan_field(&column, cell, offsets[i]) {
                f.path = Some(format!("$[{row}].{column}"));
                out.push(f);
            }
        }
        row += 1;
    }
    out
}

/// CSV records (RFC 4180: quoted fields, `""` escapes, newlines inside quotes), with each
/// cell's offset in `data`.
fn csv_records(data: &[u8]) -> Vec<(Vec<Vec<u8>>, Vec<usize>)> {
    let mut records = Vec::new();
    let mut cells = Vec::new();
    let mut offsets = Vec::new();
    let mut cell = Vec::new();
    let mut cell_start = 0;
    let mut quoted = false;
    let mut i = 0;
    while i < data.len() {
        let c = data[i];
        if quoted {
            if c == b'"' {
                if data.get(i + 1) == Some(&b'"') {
                    cell.push(b'"');
                    i += 1;
                } else {
                    quoted = false;
                }
            } else {
                cell.push(c);
            }
        } else {
            match c {
                b'"' if cell.is_empty() => {
                    quoted = true;
                    cell_start = i + 1;
                }
                b',' => {
                    cells.push(std::mem::take(&mut cell));
                    offsets.push(cell_start);
                    cell_start = i + 1;
                }
                b'\n' => {
                    if cell.last() == Some(&b'\r') {
                        cell.pop();
                    }
                    cells.push(std::mem::take(&mut cell));
                    offsets.push(cell_start);
                    records.push((std::mem::take(&mut cells), std::mem::take(&mut offsets)));
                    cell_start = i + 1;
                }
                _ => cell.push(c),
            }
        }
        i += 1;
    }
    if !cell.is_empty() || !cells.is_empty() {
        cells.push(cell);
        offsets.push(cell_start);
        records.push((cells, offsets));
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_fields_of_their_columns() {
        let data = b"name,email,note\n\"Lovelace, Ada\",ada@analytical.engineering,\"said \"\"hi\"\"\"\nBob,bob@builder.dev,x\n";
        let recs = csv_records(data);
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[1].0[0], b"Lovelace, Ada".to_vec());
        assert_eq!(recs[1].0[2], b"said \"hi\"".to_vec());
        let f = csv(&Engine::default(), data);
        let got: Vec<(&str, Option<&str>)> = f
            .iter()
            .map(|f| (f.kind.as_ref(), f.path.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("pii.email", Some("$[0].email")),
                ("pii.email", Some("$[1].email"))
            ]
        );
        assert_eq!(&data[f[0].offset..f[0].offset + 3], b"ada");
    }

    #[test]
    fn auto_detects_json_ndjson_and_text() {
        let e = Engine::default();
        let ndjson = b"{\"ssn\":\"536904399\"}\n{\"email\":\"jo@acme-corp.io\"}\n";
        let f = detect(&e, ndjson, Input::Auto, "-");
        assert_eq!(f.len(), 2);
        assert_eq!(&ndjson[f[1].offset..f[1].offset + 2], b"jo");
        let f = detect(&e, b"contact jo@acme-corp.io", Input::Auto, "-");
        assert_eq!(f[0].kind, "pii.email");
    }
}
