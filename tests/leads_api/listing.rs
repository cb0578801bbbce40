//! Listing leads: pagination over a changing list, and the filters.

use super::*;
use std::collections::HashSet;

#[tokio::test]
async fn pagination_over_a_changing_list_neither_repeats_nor_loses_leads() {
    let t = setup().await;
    let (tenant, owner) = workspace(&t, "paging-owner").await;
    let base = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() - Duration::days(10);
    let original = seed_leads(
        &t,
        &tenant,
        120,
        Seed {
            newest: base,
            ..one_seed("orig")
        },
    )
    .await;

    let mut seen: Vec<String> = Vec::new();
    let first = get(&t, &owner, "/v1/leads").await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.items().len(), 50);
    seen.extend(first.ids());
    assert_eq!(seen[..], original[..50], "newest first");

    // Leads arrive between pages: newer ones (before the cursor) and one whose creation time
    // falls behind it (it shows up once, later).
    seed_leads(
        &t,
        &tenant,
        30,
        Seed {
            newest: base + Duration::hours(1),
            ..one_seed("newer")
        },
    )
    .await;
    let behind = seed_leads(
        &t,
        &tenant,
        1,
        Seed {
            newest: base - Duration::minutes(99) - Duration::seconds(30),
            ..one_seed("behind")
        },
    )
    .await;
    let second = get(
        &t,
        &owner,
        &format!("/v1/leads?cursor={}", first.cursor().unwrap()),
    )
    .await;
    assert_eq!(second.status, 200, "{}", second.body);
    seen.extend(second.ids());
    seed_leads(
        &t,
        &tenant,
        5,
        Seed {
            newest: base + Duration::hours(2),
            ..one_seed("newest")
        },
    )
    .await;
    let mut cursor = second.cursor();
    while let Some(c) = cursor {
        let r = get(&t, &owner, &format!("/v1/leads?cursor={c}")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        seen.extend(r.ids());
        cursor = r.cursor();
    }

    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a lead came twice");
    for id in &original {
        assert!(unique.contains(id), "{id} was lost");
    }
    assert!(unique.contains(&behind[0]));
    assert!(!seen
        .iter()
        .any(|id| id.starts_with("ld-newer") || id.starts_with("ld-newest")));
    assert_eq!(seen.len(), 121);
}

#[tokio::test]
async fn leads_are_filtered_by_stage_form_created_range_and_exact_email() {
    let t = setup().await;
    let (tenant, owner) = workspace(&t, "filter-owner").await;
    let day = |d: i64| {
        OffsetDateTime::now_utc().replace_time(time::Time::from_hms(12, 0, 0).unwrap())
            - Duration::days(30 - d)
    };
    let new_f1 = seed_leads(
        &t,
        &tenant,
        10,
        Seed {
            stage: "new",
            form: "fm-one",
            newest: day(0),
            step: Duration::minutes(5),
            label: "a",
        },
    )
    .await;
    let won_f2 = seed_leads(
        &t,
        &tenant,
        5,
        Seed {
            stage: "won",
            form: "fm-two",
            newest: day(1),
            step: Duration::minutes(5),
            label: "b",
        },
    )
    .await;
    let won_f1 = seed_leads(
        &t,
        &tenant,
        3,
        Seed {
            stage: "won",
            form: "fm-one",
            newest: day(2),
            step: Duration::minutes(5),
            label: "c",
        },
    )
    .await;

    let ids = |r: &Reply| -> HashSet<String> { r.ids().into_iter().collect() };
    let set = |v: &[&Vec<String>]| -> HashSet<String> {
        v.iter().flat_map(|x| x.iter().cloned()).collect()
    };

    let r = get(&t, &owner, "/v1/leads?stage=won").await;
    assert_eq!(ids(&r), set(&[&won_f2, &won_f1]));
    assert!(r.items().iter().all(|l| l["stage"] == json!("won")));
    let r = get(&t, &owner, "/v1/leads?form=fm-one").await;
    assert_eq!(ids(&r), set(&[&new_f1, &won_f1]));
    let r = get(&t, &owner, "/v1/leads?stage=won&form=fm-one").await;
    assert_eq!(ids(&r), set(&[&won_f1]));
    let d1 = day(1).date();
    let r = get(
        &t,
        &owner,
        &format!("/v1/leads?created_from={d1}&created_to={d1}"),
    )
    .await;
    assert_eq!(ids(&r), set(&[&won_f2]), "{}", r.body);
    // Times are inclusive, to the second.
    let from = rfc3339(day(1) - Duration::minutes(5));
    let r = get(
        &t,
        &owner,
        &format!(
            "/v1/leads?created_from={from}&created_to={}",
            rfc3339(day(1))
        ),
    )
    .await;
    assert_eq!(ids(&r), won_f2[..2].iter().cloned().collect::<HashSet<_>>());
    let r = get(
        &t,
        &owner,
        &format!("/v1/leads?stage=won&created_from={}", day(2).date()),
    )
    .await;
    assert_eq!(ids(&r), set(&[&won_f1]));

    // Exact email through the blind index, case-insensitively; another tenant's lead with the
    // same email never shows.
    let (other, _) = workspace(&t, "filter-other").await;
    seed_leads(
        &t,
        &other,
        1,
        Seed {
            label: "b",
            ..one_seed("b")
        },
    )
    .await;
    let r = get(&t, &owner, "/v1/leads?email=B.0@Example.com").await;
    assert_eq!(r.ids(), [won_f2[0].clone()], "{}", r.body);
    assert_eq!(r.cursor(), None);
    let r = get(&t, &owner, "/v1/leads?email=b.0@example.com&stage=new").await;
    assert!(r.items().is_empty());

    for bad in [
        "/v1/leads?created_from=yesterday",
        "/v1/leads?created_from=2026-02-01&created_to=2026-01-01",
        "/v1/leads?email=not-an-email",
        "/v1/leads?stage=Won!",
        "/v1/leads?form=a%23b",
        "/v1/leads?limit=0",
        "/v1/leads?limit=101",
        "/v1/leads?limit=ten",
        "/v1/leads?sort=name",
        "/v1/leads?stage=new&stage=won",
    ] {
        let r = get(&t, &owner, bad).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "invalid_query"),
            "{bad}: {}",
            r.body
        );
    }
}

/// The first stage has no `by_stage` entries (a new lead writes one index entry less): its list
/// is read from `by_tenant`, filtered on the stage, in as many Queries as fill the page. Leads
/// written before (which still carry a first-stage `stage_pk`) are listed the same way.
#[tokio::test]
async fn the_first_stage_is_listed_in_full_pages_without_its_own_index_entries() {
    let t = setup().await;
    let (tenant, owner) = workspace(&t, "first-stage-owner").await;
    let base = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() - Duration::days(3);
    // Oldest: 6 new leads; then 40 won ones, newer than all of them.
    let new = seed_leads(
        &t,
        &tenant,
        6,
        Seed {
            newest: base,
            ..one_seed("fresh")
        },
    )
    .await;
    seed_leads(
        &t,
        &tenant,
        40,
        Seed {
            stage: "won",
            newest: base + Duration::hours(2),
            ..one_seed("done")
        },
    )
    .await;
    let leads = t.w.items_with_sk_prefix("LeadsTable", "LEAD").await;
    assert_eq!(leads.len(), 46);
    for it in &leads {
        let stage = it["stage"].as_s().unwrap();
        assert_eq!(
            it.contains_key("stage_pk"),
            stage != "new",
            "only a lead past the first stage is in by_stage: {it:?}"
        );
    }
    // A lead written before the first stage left `by_stage` still carries its key.
    let legacy_key = shared_core::keys::lead(&tenant, &LeadId::parse(&new[5]).unwrap());
    t.w.clients
        .dynamo
        .update_item()
        .table_name(t.w.table("LeadsTable"))
        .set_key(Some(shared_core::dynamo::key_item(&legacy_key)))
        .update_expression("SET stage_pk = :p")
        .expression_attribute_values(
            ":p",
            av_s(shared_core::keys::leads_in_stage(&tenant, "new")),
        )
        .send()
        .await
        .unwrap();

    // 40 won leads come first in `by_tenant`: a page of 5 still comes back full (its reads are
    // within 10 pages' worth, `FIRST_STAGE_READ_BUDGET`).
    let first = get(&t, &owner, "/v1/leads?stage=new&limit=5").await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.ids(), new[..5], "{}", first.body);
    let second = get(
        &t,
        &owner,
        &format!(
            "/v1/leads?stage=new&limit=5&cursor={}",
            first.cursor().unwrap()
        ),
    )
    .await;
    assert_eq!(second.ids(), new[5..], "{}", second.body);
    assert!(second.items().iter().all(|l| l["stage"] == json!("new")));
    // The other stages still come from `by_stage`, and every lead from `by_tenant`.
    assert_eq!(
        get(&t, &owner, "/v1/leads?stage=won&limit=100")
            .await
            .ids()
            .len(),
        40
    );
    assert_eq!(get(&t, &owner, "/v1/leads?limit=100").await.ids().len(), 46);
}
