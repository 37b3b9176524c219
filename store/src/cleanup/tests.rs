//! The decision rules, one row per rule and edge case.

use super::decide::{
    Decision, ManifestState, RepositoryState, RowKind, TagState, Verdict, decide,
    referrer_tag_subject,
};
use super::policy::Policies;
use chrono::{DateTime, Duration, Utc};

const POLICIES: &str = r#"
[[policy]]
repositories = ["team-a/**"]
keep.tags = ['^v\d+\.\d+\.\d+$']
keep.used_within = "30d"
untagged = "delete"
min_age = "24h"

[[policy]]
repositories = ["ranked/*"]
keep.most_recently_pushed = 2
keep.most_recently_used = 1
untagged = "keep"
"#;

fn now() -> DateTime<Utc> {
    "2026-12-01T12:00:00Z".parse().expect("a time")
}

fn ago(days: i64) -> Option<DateTime<Utc>> {
    Some(now() - Duration::days(days))
}

fn digest(name: &str) -> String {
    format!("sha256:{:0>64}", hex(name))
}

fn hex(name: &str) -> String {
    name.bytes().map(|b| format!("{b:02x}")).collect()
}

fn tag(name: &str, manifest: &str, pushed_days: i64, used_days: i64) -> TagState {
    TagState {
        tag: name.to_owned(),
        digest: digest(manifest),
        pushed_at: ago(pushed_days),
        last_used_at: ago(used_days),
        age_at: ago(pushed_days),
    }
}

fn image(name: &str, age_days: i64) -> ManifestState {
    ManifestState {
        digest: digest(name),
        is_index: false,
        children: Vec::new(),
        subject: None,
        age_at: ago(age_days),
        blobs: Vec::new(),
    }
}

fn index(name: &str, children: &[&str], age_days: i64) -> ManifestState {
    ManifestState {
        is_index: true,
        children: children.iter().map(|c| digest(c)).collect(),
        ..image(name, age_days)
    }
}

fn referrer(name: &str, subject: &str, age_days: i64) -> ManifestState {
    ManifestState {
        subject: Some(digest(subject)),
        ..image(name, age_days)
    }
}

fn find<'a>(decisions: &'a [Decision], tag: Option<&str>, manifest: &str) -> &'a Decision {
    decisions
        .iter()
        .find(|d| d.tag.as_deref() == tag && d.digest == digest(manifest))
        .unwrap_or_else(|| panic!("no decision for {tag:?} {manifest}: {decisions:#?}"))
}

#[test]
fn every_rule_decides_as_the_policy_says() {
    let policies = Policies::parse(POLICIES).expect("valid policies");
    let young_hours = TagState {
        pushed_at: Some(now() - Duration::hours(2)),
        last_used_at: Some(now() - Duration::hours(2)),
        age_at: Some(now() - Duration::hours(2)),
        ..tag("never-pulled-young", "young", 0, 0)
    };
    let state = RepositoryState {
        registry: "main".into(),
        repository: "team-a/app".into(),
        tags: vec![
            tag("v1.2.3", "release", 200, 200),
            tag("recent-pull", "pulled", 200, 5),
            tag("only-checked", "checked", 200, 3),
            young_hours,
            tag("stale", "stale", 100, 100),
            tag("stale-shared", "release", 100, 100),
            tag("multi", "index-old", 100, 100),
            tag("multi-kept", "index-used", 100, 1),
            TagState {
                tag: format!("sha256-{:0>64}.sig", hex("release")),
                ..tag("sig", "signature", 100, 100)
            },
        ],
        manifests: vec![
            image("release", 200),
            image("pulled", 200),
            image("checked", 200),
            image("young", 0),
            image("stale", 100),
            index("index-old", &["child-old-amd64", "child-old-arm64"], 100),
            image("child-old-amd64", 100),
            image("child-old-arm64", 100),
            index("index-used", &["child-used"], 100),
            image("child-used", 100),
            image("signature", 100),
            referrer("sbom-of-stale", "stale", 100),
            image("untagged-old", 100),
            ManifestState {
                age_at: Some(now() - Duration::hours(1)),
                ..image("untagged-young", 0)
            },
        ],
    };
    let decisions = decide(&policies, &state, now());
    use RowKind::*;
    use Verdict::*;
    let rows: &[(Option<&str>, &str, RowKind, Verdict, &str)] = &[
        (Some("v1.2.3"), "release", Image, Keep, "keep.tags"),
        (
            Some("recent-pull"),
            "pulled",
            Image,
            Keep,
            "keep.used_within",
        ),
        (
            Some("only-checked"),
            "checked",
            Image,
            Keep,
            "keep.used_within",
        ),
        (
            Some("never-pulled-young"),
            "young",
            Image,
            Keep,
            "younger than min_age",
        ),
        (
            Some("stale"),
            "stale",
            Image,
            Delete,
            "no rule of policy[0] keeps it",
        ),
        (
            Some("stale-shared"),
            "release",
            Image,
            Delete,
            "its manifest stays (kept tag v1.2.3",
        ),
        (Some("multi"), "index-old", Index, Delete, "no rule"),
        (None, "child-old-amd64", Child, Delete, "goes with them"),
        (None, "child-old-arm64", Child, Delete, "goes with them"),
        (
            Some("multi-kept"),
            "index-used",
            Index,
            Keep,
            "keep.used_within",
        ),
        (None, "child-used", Child, Keep, "listed by a kept index"),
        (None, "sbom-of-stale", Referrer, Delete, "goes with it"),
        (
            None,
            "untagged-old",
            Untagged,
            Delete,
            "untagged (policy[0]",
        ),
        (
            None,
            "untagged-young",
            Untagged,
            Keep,
            "younger than min_age",
        ),
    ];
    for (tag, manifest, kind, verdict, reason) in rows {
        let decision = find(&decisions, *tag, manifest);
        assert_eq!(
            (decision.kind, decision.verdict),
            (*kind, *verdict),
            "{tag:?} {manifest}: {decision:?}"
        );
        assert!(
            decision.reason.contains(reason),
            "{tag:?} {manifest}: {:?} lacks {reason:?}",
            decision.reason
        );
    }
    let signature = decisions
        .iter()
        .find(|d| d.tag.as_deref().is_some_and(|t| t.ends_with(".sig")))
        .expect("the signature tag");
    assert_eq!(
        (signature.kind, signature.verdict),
        (Referrer, Keep),
        "a referrer tag of a kept manifest stays: {signature:?}"
    );
    assert_eq!(
        decisions.len(),
        state.tags.len() + state.manifests.len() - 8,
        "one row per tag and per untagged manifest (8 manifests are tagged)"
    );
}

#[test]
fn most_recent_rules_rank_within_the_repository() {
    let policies = Policies::parse(POLICIES).expect("valid policies");
    let state = RepositoryState {
        registry: "main".into(),
        repository: "ranked/app".into(),
        tags: vec![
            tag("a", "a", 10, 300),
            tag("b", "b", 20, 5),
            tag("c", "c", 30, 300),
            tag("d", "d", 40, 300),
        ],
        manifests: ["a", "b", "c", "d"].iter().map(|m| image(m, 10)).collect(),
    };
    let decisions = decide(&policies, &state, now());
    let verdict = |name: &str| find(&decisions, Some(name), name).verdict;
    assert_eq!(verdict("a"), Verdict::Keep, "most recently pushed");
    assert_eq!(
        verdict("b"),
        Verdict::Keep,
        "most recently used (and pushed 2nd)"
    );
    assert_eq!(verdict("c"), Verdict::Delete);
    assert_eq!(verdict("d"), Verdict::Delete);
}

#[test]
fn unknown_is_never_a_candidate_and_no_policy_keeps_everything() {
    let policies = Policies::parse(POLICIES).expect("valid policies");
    let unknown = TagState {
        last_used_at: None,
        age_at: None,
        pushed_at: None,
        ..tag("mystery", "mystery", 0, 0)
    };
    let old_unused = TagState {
        last_used_at: None,
        ..tag("unused", "unused", 400, 0)
    };
    let state = RepositoryState {
        registry: "main".into(),
        repository: "team-a/legacy".into(),
        tags: vec![unknown, old_unused],
        manifests: vec![image("mystery", 0), image("unused", 400)],
    };
    let decisions = decide(&policies, &state, now());
    assert!(
        find(&decisions, Some("mystery"), "mystery")
            .reason
            .contains("age unknown")
    );
    assert!(
        find(&decisions, Some("unused"), "unused")
            .reason
            .contains("last use unknown")
    );
    assert!(decisions.iter().all(|d| d.verdict == Verdict::Keep));

    let elsewhere = RepositoryState {
        repository: "team-b/app".into(),
        ..state.clone()
    };
    let decisions = decide(&policies, &elsewhere, now());
    assert!(
        decisions
            .iter()
            .all(|d| d.verdict == Verdict::Keep && d.reason.contains("no policy matches"))
    );
}

#[test]
fn referrer_tags_follow_the_convention() {
    let hex = "a".repeat(64);
    assert_eq!(
        referrer_tag_subject(&format!("sha256-{hex}.sig")),
        Some(format!("sha256:{hex}"))
    );
    assert!(referrer_tag_subject(&format!("sha256-{hex}.sbom")).is_some());
    assert!(referrer_tag_subject(&format!("sha256-{hex}.att")).is_some());
    assert_eq!(referrer_tag_subject(&format!("sha256-{hex}.txt")), None);
    assert_eq!(referrer_tag_subject("sha256-abc.sig"), None);
    assert_eq!(referrer_tag_subject("v1.0"), None);
}
