//! Report rows (JSON objects with the same keys, as `regstat_store::reports::run` returns
//! them) as CSV: the same bytes from `regstat report --format csv` and the console's CSV links.

use serde_json::Value;

/// The column names: the first row's keys, in order.
pub fn columns(rows: &[Value]) -> Vec<String> {
    rows.first()
        .and_then(Value::as_object)
        .map(|row| row.keys().cloned().collect())
        .unwrap_or_default()
}

/// A cell as text: arrays joined with commas, `null` (or absent) as `null_text`.
pub fn cell(value: Option<&Value>, null_text: &str) -> String {
    match value {
        None | Some(Value::Null) => null_text.to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| cell(Some(item), null_text))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

/// Why rows could not be written as CSV.
#[derive(Debug, thiserror::Error)]
#[error("cannot write CSV: {0}")]
pub struct CsvError(String);

/// The rows as CSV with a header row (none without rows); null is an empty field.
pub fn csv(rows: &[Value]) -> Result<String, CsvError> {
    let error = |e: &dyn std::fmt::Display| CsvError(e.to_string());
    let columns = columns(rows);
    let mut writer = csv::Writer::from_writer(Vec::new());
    if !columns.is_empty() {
        writer.write_record(&columns).map_err(|e| error(&e))?;
    }
    for row in rows {
        writer
            .write_record(columns.iter().map(|c| cell(row.get(c), "")))
            .map_err(|e| error(&e))?;
    }
    let bytes = writer.into_inner().map_err(|e| error(&e))?;
    String::from_utf8(bytes).map_err(|e| error(&e))
}
