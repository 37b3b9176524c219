//! Turning admin data into text: aligned tables for people, JSON for scripts.
//!
//! Tables are plain text with columns padded to their widest cell (two spaces apart), numbers
//! right-aligned; no crate needed for that. Control characters in cells (a reason with a
//! newline, say) become spaces so every row stays on one line.

use super::letter::DeadLetter;
use super::status::{QueueStatus, Role, Status};
use chrono::SecondsFormat;

/// Longest reason shown in a table; JSON has the full text.
const REASON_WIDTH: usize = 60;

/// How a column's cells line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A text table with a header row.
#[derive(Debug, Clone)]
pub struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(columns: &[(&'static str, Align)]) -> Self {
        Self {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are blank, extra ones ignored).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.iter().map(|c| one_line(c)).collect());
    }

    /// The table, one line per row, each ending in a newline.
    pub fn render(&self) -> String {
        let cell = |row: &[String], i: usize| row.get(i).map_or("", String::as_str).to_owned();
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, (header, _))| {
                self.rows
                    .iter()
                    .map(|row| cell(row, i).chars().count())
                    .chain([header.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let header: Vec<String> = self.columns.iter().map(|(h, _)| (*h).to_owned()).collect();
        let mut out = String::new();
        for row in std::iter::once(&header).chain(&self.rows) {
            let line: Vec<String> = self
                .columns
                .iter()
                .enumerate()
                .map(|(i, (_, align))| {
                    let text = cell(row, i);
                    let pad = " ".repeat(widths[i].saturating_sub(text.chars().count()));
                    match align {
                        Align::Left => format!("{text}{pad}"),
                        Align::Right => format!("{pad}{text}"),
                    }
                })
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        out
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

/// `value` as pretty JSON followed by a newline.
pub fn json<T: serde::Serialize>(value: &T) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(value).map(|text| text + "\n")
}

/// The dead letters as a table: id, action, repository, error kind, reason (shortened),
/// attempts, age.
pub fn dead_letters_table(letters: &[DeadLetter]) -> String {
    let mut table = Table::new(&[
        ("ID", Align::Left),
        ("ACTION", Align::Left),
        ("REPOSITORY", Align::Left),
        ("ERROR KIND", Align::Left),
        ("REASON", Align::Left),
        ("ATTEMPTS", Align::Right),
        ("AGE", Align::Right),
    ]);
    for letter in letters {
        table.row(vec![
            text(&letter.id),
            text(&letter.action),
            text(&letter.repository),
            text(&letter.error_kind),
            shorten(letter.reason.as_deref().unwrap_or(""), REASON_WIDTH),
            letter.attempts.map(|a| a.to_string()).unwrap_or_default(),
            letter.age_secs.map(human_age).unwrap_or_default(),
        ]);
    }
    table.render()
}

/// The status report: one row per queue, then a line about the ledger.
pub fn status_table(status: &Status) -> String {
    let mut table = Table::new(&[
        ("QUEUE", Align::Left),
        ("ROLE", Align::Left),
        ("READY", Align::Right),
        ("CONSUMERS", Align::Right),
        ("NEWEST RECORDED", Align::Left),
    ]);
    for queue in &status.queues {
        table.row(queue_row(queue));
    }
    let ledger = &status.ledger;
    let count = if ledger.estimated {
        format!("about {} events (planner estimate)", ledger.events)
    } else {
        format!("{} events", ledger.events)
    };
    let newest = match (
        ledger.recorded.newest_recorded_at,
        ledger.recorded.newest_recorded_age_secs,
    ) {
        (Some(at), Some(age)) => format!(
            "; newest received {} ago ({})",
            human_age(age),
            at.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
        _ => String::new(),
    };
    format!(
        "{}\nledger {}: {count}{newest}\n",
        table.render(),
        ledger.table
    )
}

fn queue_row(queue: &QueueStatus) -> Vec<String> {
    let role = match queue.role {
        Role::Work => "work",
        Role::Retry => "retry",
        Role::Dead => "dead",
        Role::Quarantine => "quarantine",
    };
    let newest = match &queue.recorded {
        None => String::new(),
        Some(recorded) => match recorded.newest_recorded_age_secs {
            Some(age) => format!("{} ago", human_age(age)),
            None => "none yet".to_owned(),
        },
    };
    let count = |n: Option<u32>| n.map_or_else(|| "missing".to_owned(), |n| n.to_string());
    vec![
        queue.name.clone(),
        role.to_owned(),
        count(queue.messages),
        count(queue.consumers),
        newest,
    ]
}

fn text(value: &Option<String>) -> String {
    value.clone().unwrap_or_default()
}

/// `value` cut to `width` characters, the cut marked with `…`.
fn shorten(value: &str, width: usize) -> String {
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
    use super::*;

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
        let mut table = Table::new(&[("NAME", Align::Left), ("N", Align::Right)]);
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
}
