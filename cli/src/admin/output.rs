//! The tables of `regstat status` and `regstat dlq` (drawn by [`crate::render`]).

use super::letter::DeadLetter;
use super::status::{QueueStatus, Role, Status};
use crate::render::{Align, Table, human_age, shorten};
use chrono::SecondsFormat;

/// Longest reason shown in a table; JSON has the full text.
const REASON_WIDTH: usize = 60;

/// The dead letters as a table: id, action, repository, error kind, reason (shortened),
/// attempts, age.
pub fn dead_letters_table(letters: &[DeadLetter]) -> String {
    let mut table = Table::new([
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
    let mut table = Table::new([
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
