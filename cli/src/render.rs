//! Everything the `regstat` command prints goes through here: aligned tables for people
//! (laid out by `comfy-table`, which also measures wide characters), JSON and CSV for scripts.
//! Commands say which columns they show; this module says how a table, a cell, a size or an
//! age looks.

use comfy_table::{CellAlignment, ContentArrangement, presets};
use regstat_shared::export::{self, cell, columns};
use serde_json::Value;

/// Output format of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// JSON for scripts (an array of objects for a report).
    Json,
    /// CSV with a header row (reports).
    Csv,
}

/// How a column's cells line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A text table with a header row: columns padded to their widest cell, two spaces apart,
/// no borders, no trailing blanks. Control characters in cells (a reason with a newline,
/// say) become spaces so every row stays on one line.
#[derive(Debug, Clone)]
pub struct Table {
    columns: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new<S: Into<String>>(columns: impl IntoIterator<Item = (S, Align)>) -> Self {
        Self {
            columns: columns
                .into_iter()
                .map(|(header, align)| (header.into(), align))
                .collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are blank, extra ones ignored).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(
            cells
                .iter()
                .take(self.columns.len())
                .map(|c| one_line(c))
                .collect(),
        );
    }

    /// The table, one line per row, each ending in a newline.
    pub fn render(&self) -> String {
        let mut table = comfy_table::Table::new();
        table
            .load_style(presets::NOTHING)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(self.columns.iter().map(|(header, _)| header.as_str()));
        for row in &self.rows {
            table.add_row(row);
        }
        let last = self.columns.len().saturating_sub(1);
        for (i, column) in table.column_iter_mut().enumerate() {
            column.set_padding((0, if i == last { 0 } else { 2 }));
            if self.columns.get(i).is_some_and(|(_, a)| *a == Align::Right) {
                column.set_cell_alignment(CellAlignment::Right);
            }
        }
        table
            .lines()
            .map(|line| line.trim_end().to_owned() + "\n")
            .collect()
    }
}

/// `value` as pretty JSON followed by a newline.
pub fn json<T: serde::Serialize>(value: &T) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(value).map(|text| text + "\n")
}

/// Report rows (JSON objects with the same keys) in `format`. A table shows sizes in binary
/// units, times to the second, null as `-`, and right-aligns number columns; CSV keeps the raw
/// values.
pub fn rows(rows: &[Value], format: Format) -> anyhow::Result<String> {
    match format {
        Format::Json => Ok(json(&rows)?),
        Format::Csv => Ok(export::csv(rows)?),
        Format::Table => Ok(rows_table(rows)),
    }
}

fn rows_table(rows: &[Value]) -> String {
    let columns = columns(rows);
    if columns.is_empty() {
        return "(no rows)\n".to_owned();
    }
    let numeric = |column: &String| {
        rows.iter()
            .any(|r| matches!(r.get(column), Some(Value::Number(_))))
            && rows
                .iter()
                .all(|r| matches!(r.get(column), Some(Value::Number(_) | Value::Null) | None))
    };
    let mut table = Table::new(columns.iter().map(|c| {
        let align = if numeric(c) {
            Align::Right
        } else {
            Align::Left
        };
        (c.to_uppercase(), align)
    }));
    for row in rows {
        table.row(columns.iter().map(|c| table_cell(c, row.get(c))).collect());
    }
    table.render()
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

/// A size in binary units: `512 B`, `1.5 KiB`.
pub fn human_bytes(bytes: u64) -> String {
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

/// A duration in its largest whole unit: `45s`, `3m`, `2h`, `5d`.
pub fn human_age(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// `value` cut to `width` characters, the cut marked with `…`.
pub fn shorten(value: &str, width: usize) -> String {
    if value.chars().count() <= width {
        return value.to_owned();
    }
    let mut cut: String = value.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `value` with control characters (newlines, tabs, escapes) replaced by spaces.
fn one_line(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn report_rows() -> Vec<Value> {
        vec![
            json!({"repository": "lab/app", "tag": "v1", "platforms": ["linux/amd64", "linux/arm64/v8"], "size": 1536, "pushed_at": "2026-11-22T10:17:28.770757+00:00", "last_pulled_at": null}),
            json!({"repository": "lab/b", "tag": "with,comma", "platforms": [], "size": 10, "pushed_at": "2026-11-21T00:00:00+00:00", "last_pulled_at": null}),
        ]
    }

    #[test]
    fn ages_use_the_largest_whole_unit() {
        assert_eq!(human_age(-5), "0s");
        assert_eq!(human_age(59), "59s");
        assert_eq!(human_age(180), "3m");
        assert_eq!(human_age(7200 + 3599), "2h");
        assert_eq!(human_age(5 * 86_400 + 10), "5d");
    }

    #[test]
    fn columns_are_aligned_and_rows_stay_on_one_line() {
        let mut table = Table::new([("NAME", Align::Left), ("N", Align::Right)]);
        table.row(vec!["a".into(), "1".into()]);
        table.row(vec!["long\nname".into(), "100".into()]);
        table.row(vec!["short".into()]);
        assert_eq!(
            table.render(),
            "NAME         N\na            1\nlong name  100\nshort\n"
        );
    }

    #[test]
    fn long_reasons_are_shortened() {
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abc", 4), "abc");
    }

    #[test]
    fn tables_align_and_humanise() {
        let text = rows(&report_rows(), Format::Table).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("REPOSITORY  TAG"));
        assert!(lines[1].contains("linux/amd64,linux/arm64/v8"));
        assert!(lines[1].contains("1.5 KiB"));
        assert!(lines[1].contains("2026-11-22T10:17:28Z"));
        assert!(lines[1].ends_with('-'), "null shown as -");
        assert_eq!(rows(&[], Format::Table).unwrap(), "(no rows)\n");
    }

    #[test]
    fn csv_quotes_and_keeps_raw_values() {
        let text = rows(&report_rows(), Format::Csv).unwrap();
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
        let text = rows(&report_rows(), Format::Json).unwrap();
        let back: Vec<Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, report_rows());
    }
}
