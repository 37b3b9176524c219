//! Rendering report rows as an aligned table, JSON or CSV.

use serde_json::Value;

/// Output format of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// A JSON array of objects.
    Json,
    /// CSV with a header row.
    Csv,
}

/// Renders rows (JSON objects with the same keys) in `format`.
pub fn render(rows: &[Value], format: Format) -> anyhow::Result<String> {
    match format {
        Format::Json => Ok(serde_json::to_string_pretty(rows)? + "\n"),
        Format::Csv => csv(rows),
        Format::Table => Ok(table(rows)),
    }
}

fn columns(rows: &[Value]) -> Vec<String> {
    rows.first()
        .and_then(Value::as_object)
        .map(|row| row.keys().cloned().collect())
        .unwrap_or_default()
}

/// A cell as text: arrays joined with commas, null as empty (CSV) or `-` (table).
fn cell(value: Option<&Value>, null: &str) -> String {
    match value {
        None | Some(Value::Null) => null.to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| cell(Some(item), null))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

fn csv(rows: &[Value]) -> anyhow::Result<String> {
    let columns = columns(rows);
    let mut writer = csv::Writer::from_writer(Vec::new());
    if !columns.is_empty() {
        writer.write_record(&columns)?;
    }
    for row in rows {
        writer.write_record(columns.iter().map(|c| cell(row.get(c), "")))?;
    }
    Ok(String::from_utf8(writer.into_inner()?)?)
}

fn table(rows: &[Value]) -> String {
    let columns = columns(rows);
    if columns.is_empty() {
        return "(no rows)\n".to_owned();
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|c| table_cell(c, row.get(c))).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let numeric: Vec<bool> = columns
        .iter()
        .map(|c| {
            rows.iter()
                .any(|r| matches!(r.get(c), Some(Value::Number(_))))
                && rows
                    .iter()
                    .all(|r| matches!(r.get(c), Some(Value::Number(_) | Value::Null) | None))
        })
        .collect();
    let line = |values: &[String]| {
        values
            .iter()
            .zip(&widths)
            .zip(&numeric)
            .map(|((v, w), right)| {
                if *right {
                    format!("{v:>w$}")
                } else {
                    format!("{v:<w$}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = line(&columns.iter().map(|c| c.to_uppercase()).collect::<Vec<_>>());
    out.push('\n');
    for row in &cells {
        out.push_str(&line(row));
        out.push('\n');
    }
    out
}

/// Table cells are for people: sizes in binary units, times to the second.
fn table_cell(column: &str, value: Option<&Value>) -> String {
    match value {
        Some(Value::Number(n)) if column == "size" || column == "bytes" => {
            n.as_u64().map(human_bytes).unwrap_or_else(|| n.to_string())
        }
        Some(Value::String(s)) if column.ends_with("_at") && s.len() > 19 => {
            format!("{}Z", &s[..19])
        }
        other => cell(other, "-"),
    }
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn rows() -> Vec<Value> {
        vec![
            json!({"repository": "lab/app", "tag": "v1", "platforms": ["linux/amd64", "linux/arm64/v8"], "size": 1536, "pushed_at": "2026-11-22T10:17:28.770757+00:00", "last_pulled_at": null}),
            json!({"repository": "lab/b", "tag": "with,comma", "platforms": [], "size": 10, "pushed_at": "2026-11-21T00:00:00+00:00", "last_pulled_at": null}),
        ]
    }

    #[test]
    fn tables_align_and_humanise() {
        let text = render(&rows(), Format::Table).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("REPOSITORY  TAG"));
        assert!(lines[1].contains("linux/amd64,linux/arm64/v8"));
        assert!(lines[1].contains("1.5 KiB"));
        assert!(lines[1].contains("2026-11-22T10:17:28Z"));
        assert!(lines[1].ends_with('-'), "null shown as -");
        assert_eq!(render(&[], Format::Table).unwrap(), "(no rows)\n");
    }

    #[test]
    fn csv_quotes_and_keeps_raw_values() {
        let text = render(&rows(), Format::Csv).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "repository,tag,platforms,size,pushed_at,last_pulled_at"
        );
        assert_eq!(
            lines[1],
            "lab/app,v1,\"linux/amd64,linux/arm64/v8\",1536,2026-11-22T10:17:28.770757+00:00,"
        );
        assert!(lines[2].contains("\"with,comma\""));
    }

    #[test]
    fn json_is_the_rows() {
        let text = render(&rows(), Format::Json).unwrap();
        let back: Vec<Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, rows());
    }
}
