//! `regstat cleanup plan`: what a cleanup policy would delete, with the reason for every tag
//! and untagged manifest, read-only; `regstat cleanup apply`: carry a plan out against the
//! registry ([`mod@apply`]). The plan's rules are the store's ([`regstat_store::cleanup`]); this
//! module reads the policy and plan files, runs them and prints what happened.

pub mod apply;

use crate::render::{self, Align, Format, Table, human_bytes, shorten};
use anyhow::{Context, bail};
use regstat_registry::Registries;
use regstat_shared::config::Settings;
use regstat_store::cleanup::inventory;
use regstat_store::cleanup::plan::{self, Plan, Scope};
use regstat_store::cleanup::policy::Policies;
use regstat_store::db;
use std::path::PathBuf;

/// `regstat cleanup plan`'s arguments.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The policy file (default: `cleanup.policy_file`).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Only this registry (its canonical name).
    #[arg(long)]
    pub registry: Option<String>,
    /// Only repositories matching this glob (`*` within a path segment, `**` across).
    #[arg(long, value_name = "GLOB")]
    pub repository: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Also write the plan, with the policy's hash and the newest event it saw, to this file
    /// (JSON), for `regstat cleanup apply`.
    #[arg(long, value_name = "PLAN.json")]
    pub output: Option<PathBuf>,
}

/// Reads the policy, makes the plan, writes `--output` if asked, and returns what to print.
pub async fn plan(settings: &Settings, args: &PlanArgs) -> anyhow::Result<String> {
    let path = match (&args.policy, settings.cleanup.policy_file.as_str()) {
        (Some(path), _) => path.clone(),
        (None, "") => bail!(
            "no cleanup policy: pass --policy FILE or set cleanup.policy_file (README, \
             \"Cleaning up\", has an example)"
        ),
        (None, configured) => PathBuf::from(configured),
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the policy file {}", path.display()))?;
    let policies = Policies::parse(&text)
        .with_context(|| format!("the policy file {} is refused", path.display()))?;
    let repository = args
        .repository
        .as_deref()
        .map(glob::Pattern::new)
        .transpose()
        .context("--repository is not a glob")?;
    let scope = Scope {
        registry: args.registry.clone(),
        repository,
    };
    let pool = db::pool(&settings.database)?;
    let made = plan::plan(
        &pool,
        &policies,
        Some(path.display().to_string()),
        &scope,
        chrono::Utc::now(),
    )
    .await
    .context("making the cleanup plan")?;
    pool.close().await;
    if let Some(output) = &args.output {
        std::fs::write(output, render::json(&made)?)
            .with_context(|| format!("writing the plan to {}", output.display()))?;
    }
    Ok(match args.format {
        Format::Table => table(&made),
        Format::Json => render::json(&made)?,
        Format::Csv => render::rows(
            &made
                .rows
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<Vec<_>, _>>()?,
            Format::Csv,
        )?,
    })
}

/// Width of the reason column in a table.
const REASON_WIDTH: usize = 72;

/// The plan for people: one line per row, then the totals per repository.
fn table(plan: &Plan) -> String {
    let mut rows = Table::new([
        ("REPOSITORY", Align::Left),
        ("TAG", Align::Left),
        ("DIGEST", Align::Left),
        ("KIND", Align::Left),
        ("DECISION", Align::Left),
        ("PUSHED", Align::Left),
        ("LAST USED", Align::Left),
        ("PULLS 30D", Align::Right),
        ("FREES", Align::Right),
        ("REASON", Align::Left),
    ]);
    let day = |at: Option<chrono::DateTime<chrono::Utc>>| {
        at.map_or_else(|| "-".to_owned(), |at| at.format("%Y-%m-%d").to_string())
    };
    for row in &plan.rows {
        rows.row(vec![
            format!("{}/{}", row.registry, row.repository),
            row.tag.clone().unwrap_or_else(|| "-".to_owned()),
            shorten(row.digest.trim_start_matches("sha256:"), 12),
            name(&row.kind),
            name(&row.decision),
            day(row.pushed_at),
            day(row.last_used_at),
            row.pulls_30d.to_string(),
            human_bytes(u64::try_from(row.bytes_freed).unwrap_or(0)),
            shorten(&row.reason, REASON_WIDTH),
        ]);
    }
    let mut totals = Table::new([
        ("REPOSITORY", Align::Left),
        ("KEPT", Align::Right),
        ("CANDIDATES", Align::Right),
        ("FREES", Align::Right),
    ]);
    for total in &plan.totals {
        totals.row(vec![
            format!("{}/{}", total.registry, total.repository),
            total.kept.to_string(),
            total.candidates.to_string(),
            human_bytes(u64::try_from(total.bytes_freed).unwrap_or(0)),
        ]);
    }
    let candidates: usize = plan.totals.iter().map(|t| t.candidates).sum();
    let bytes: i64 = plan.totals.iter().map(|t| t.bytes_freed).sum();
    format!(
        "{}\n{}\npolicy {} ({}); {candidates} candidates, {} freed once the registry's \
         garbage collection runs; nothing was changed\n",
        rows.render(),
        totals.render(),
        plan.policy_file.as_deref().unwrap_or("-"),
        plan.policy_hash,
        human_bytes(u64::try_from(bytes).unwrap_or(0)),
    )
}

/// A unit enum's name, as JSON writes it (`image`, `delete`).
fn name(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `regstat cleanup apply`'s arguments.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// The plan, as `regstat cleanup plan --output` wrote it.
    #[arg(long, value_name = "PLAN.json")]
    pub plan: PathBuf,
    /// Delete. Without it, only say what would be deleted.
    #[arg(long)]
    pub yes: bool,
    /// Stop after this many manifest deletions.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub max_deletions: usize,
}

/// What `apply` did, printed, and whether every deletion it tried was done.
pub struct Applied {
    /// What to print.
    pub report: String,
    /// `false` when the registry refused a deletion (the rest were not tried).
    pub ok: bool,
}

/// Re-checks the plan against the current state, then deletes (with `--yes`) or says what it
/// would delete.
pub async fn apply(settings: &Settings, args: &ApplyArgs) -> anyhow::Result<Applied> {
    use std::fmt::Write as _;
    let text = std::fs::read_to_string(&args.plan)
        .with_context(|| format!("reading the plan {}", args.plan.display()))?;
    let made: Plan = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a plan written by `regstat cleanup plan --output`",
            args.plan.display()
        )
    })?;
    let pool = db::pool(&settings.database)?;
    let current = inventory::repositories(&pool, None)
        .await
        .context("reading the current state")?;
    pool.close().await;
    let work = apply::recheck(&made, &current);

    let mut report = String::new();
    let _ = writeln!(
        report,
        "plan {} made {} with policy {} ({})",
        args.plan.display(),
        made.created_at.format("%Y-%m-%d %H:%M:%SZ"),
        made.policy_file.as_deref().unwrap_or("-"),
        made.policy_hash
    );
    for skipped in &work.skipped {
        let _ = writeln!(
            report,
            "skipped {}/{}{} ({}): {}",
            skipped.registry,
            skipped.repository,
            skipped
                .tag
                .as_deref()
                .map(|t| format!(":{t}"))
                .unwrap_or_default(),
            short(&skipped.digest),
            skipped.reason
        );
    }
    let describe = |d: &apply::Deletion| {
        let tags = if d.tags.is_empty() {
            String::new()
        } else {
            format!("; tags {}", d.tags.join(", "))
        };
        format!(
            "{}/{}@{} ({}{tags})",
            d.registry,
            d.repository,
            d.digest,
            name(&d.kind)
        )
    };
    let planned = work.deletions.len().min(args.max_deletions);
    if !args.yes {
        for deletion in work.deletions.iter().take(planned) {
            let _ = writeln!(report, "would delete {}", describe(deletion));
        }
        let _ = writeln!(
            report,
            "dry run: {planned} manifests would be deleted{}, {} rows skipped; pass --yes to \
             delete",
            over_limit(work.deletions.len(), args.max_deletions),
            work.skipped.len()
        );
        return Ok(Applied { report, ok: true });
    }

    let registries = Registries::from_settings(&settings.registries, &settings.callbacks)?;
    // The registry's delete events carry it into regstat's deletion audit trail: which
    // regstat and which plan (the plan file's hash) deleted it.
    let user_agent = format!(
        "regstat-cleanup/{} (plan sha256:{:x})",
        regstat_shared::VERSION,
        <sha2::Sha256 as sha2::Digest>::digest(text.as_bytes())
    );
    let mut deleted = 0;
    let mut ok = true;
    for deletion in work.deletions.iter().take(planned) {
        let Some(client) = registries.client(&deletion.registry) else {
            let _ = writeln!(
                report,
                "not deleted {}: no [[registries]] entry named {}, so regstat cannot reach it",
                describe(deletion),
                deletion.registry
            );
            continue;
        };
        match client
            .delete_manifest(&deletion.repository, &deletion.digest, &user_agent)
            .await
        {
            Ok(true) => {
                deleted += 1;
                let _ = writeln!(report, "deleted {}", describe(deletion));
            }
            Ok(false) => {
                let _ = writeln!(report, "already gone {}", describe(deletion));
            }
            Err(error) => {
                let _ = writeln!(
                    report,
                    "refused {}: {error}; stopping here, nothing after it was tried",
                    describe(deletion)
                );
                ok = false;
                break;
            }
        }
    }
    let _ = writeln!(
        report,
        "deleted {deleted} manifests{}, {} rows skipped. The registry frees their blobs only \
         in its garbage collection: run `registry garbage-collect <config.yml>` (distribution; \
         with the registry stopped or read-only) to reclaim the space",
        over_limit(work.deletions.len(), args.max_deletions),
        work.skipped.len()
    );
    Ok(Applied { report, ok })
}

/// Says how many deletions `--max-deletions` left for another run.
fn over_limit(total: usize, max: usize) -> String {
    if total > max {
        format!(
            " (stopped at --max-deletions {max}; {} more remain)",
            total - max
        )
    } else {
        String::new()
    }
}

/// A digest's first 12 hex digits.
fn short(digest: &str) -> String {
    shorten(digest.trim_start_matches("sha256:"), 12)
}
