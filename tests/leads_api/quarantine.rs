//! A form's quarantine (issue 19): what the spam defence keeps apart is listed with its reasons,
//! released as a lead (once) or deleted, and only by the form's own tenant. The proof of work's
//! single use is enforced by intake's transaction against the emulator.

use super::*;
use shared_privacy::inventory::{self, Table};

/// A GET of the form's proof-of-work challenge through lead intake, as the snippet sends it.
async fn challenge(t: &T, form: &str) -> shared_leads::spam::pow::Challenge {
    let mut e = fixture("lead-intake/submit-json.json");
    e["routeKey"] = json!("GET /v1/forms/{formId}/challenge");
    e["rawPath"] = json!(format!("/v1/forms/{form}/challenge"));
    e["requestContext"]["http"]["method"] = json!("GET");
    e["requestContext"]["http"]["path"] = json!(format!("/v1/forms/{form}/challenge"));
    e["pathParameters"]["formId"] = json!(form);
    e["body"] = Value::Null;
    let resp = lead_intake::handle(&t.w.intake(None), request(&e)).await;
    assert_eq!(resp.status(), 200, "{}", response_json(&resp));
    assert_eq!(header(&resp, "cache-control"), Some("no-store"));
    assert_eq!(
        header(&resp, "access-control-allow-origin"),
        Some(WEB_ORIGIN)
    );
    serde_json::from_value(response_json(&resp)).expect("an ALTCHA challenge")
}

fn solved(c: &shared_leads::spam::pow::Challenge) -> String {
    shared_leads::spam::pow::solve(c)
        .expect("solvable")
        .encode()
}

fn quarantine_path(form: &str) -> String {
    format!("/v1/forms/{form}/quarantine")
}

/// A bot's post: a disposable address, no proof of work.
fn bot(n: usize) -> Value {
    json!({"email": format!("bot{n}@mailinator.com"), "name": "Bot", "message": "cheap pills"})
}

#[tokio::test]
async fn a_bot_is_quarantined_listed_with_its_reasons_and_released_as_a_lead_once() {
    let t = setup().await;
    let (tenant, owner) = workspace(&t, "quarantine-owner").await;
    let form = create_form(&t, &owner, contact_form()).await;

    let answer = submit(&t, &form, bot(1)).await;
    // Answered like an accepted submission: the ids of a lead.
    let lead_id = answer["lead_id"].as_str().unwrap().to_string();
    assert!(lead_id.starts_with("ld-"), "{answer}");
    assert!(answer["submission_id"].as_str().unwrap().starts_with("sb-"));
    // Not a lead, not counted.
    assert_eq!(get(&t, &owner, "/v1/leads").await.items().len(), 0);
    // The usage counter holds the minute's rate counts (a flood of spam is limited too), not
    // the month's count.
    let usage: Vec<_> = t
        .w
        .scan("OpsTable")
        .await
        .into_iter()
        .filter(|it| s(it, "sk") == Some("USAGE") && s(it, "pk").unwrap().contains(tenant.as_str()))
        .collect();
    assert_eq!(usage.len(), 1);
    assert!(!usage[0].contains_key("n"), "not counted in the quota");
    assert!(
        usage[0].keys().any(|k| k.starts_with("rf_")),
        "{:?}",
        usage[0]
    );

    let list = get(&t, &owner, &quarantine_path(&form)).await;
    assert_eq!(list.status, 200, "{}", list.body);
    let items = list.items();
    assert_eq!(items.len(), 1);
    let q = &items[0];
    assert_eq!(q["reasons"], json!(["pow_missing", "disposable_email"]));
    assert_eq!(q["score"], json!(6));
    assert_eq!(q["fields"]["email"], json!("bot1@mailinator.com"));
    assert_eq!(q["technical"]["ip"], json!("203.0.113.10"));
    let qid = q["id"].as_str().unwrap().to_string();

    // Every attribute the quarantine stored is declared in the data inventory.
    for it in t.w.scan("OpsTable").await {
        let sk = s(&it, "sk").unwrap().to_string();
        for name in it.keys() {
            assert!(
                inventory::declaration(Table::Ops, &sk, name).is_some(),
                "{sk} {name} is not in the inventory"
            );
        }
    }

    let released = call(
        &t,
        &owner,
        "POST",
        &format!("{}/{qid}/release", quarantine_path(&form)),
        None,
    )
    .await;
    assert_eq!(released.status, 200, "{}", released.body);
    assert_eq!(
        released.str("lead_id"),
        lead_id,
        "the lead the answer named"
    );
    assert_eq!(released.body["new_lead"], json!(true));
    let lead = get(&t, &owner, &format!("/v1/leads/{lead_id}")).await;
    assert_eq!(lead.status, 200, "{}", lead.body);
    assert_eq!(lead.body["email"], json!("bot1@mailinator.com"));
    assert!(get(&t, &owner, &quarantine_path(&form))
        .await
        .items()
        .is_empty());

    // Idempotent: the same lead and submission, nothing new.
    let again = call(
        &t,
        &owner,
        "POST",
        &format!("{}/{qid}/release", quarantine_path(&form)),
        None,
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.str("lead_id"), lead_id);
    assert_eq!(again.str("submission_id"), released.str("submission_id"));
    assert_eq!(again.body["new_lead"], json!(false));
    assert_eq!(
        t.w.items_with_sk_prefix("LeadsTable", "SUB#").await.len(),
        1
    );
    // The release counted once against the quota.
    let counted: Vec<String> = t
        .w
        .scan("OpsTable")
        .await
        .into_iter()
        .filter(|it| s(it, "sk") == Some("USAGE") && s(it, "pk").unwrap().contains(tenant.as_str()))
        .map(|it| it["n"].as_n().unwrap().clone())
        .collect();
    assert_eq!(counted, ["1"]);
}

#[tokio::test]
async fn another_tenant_can_neither_list_release_nor_delete_a_quarantined_submission() {
    let t = setup().await;
    let (_a, owner_a) = workspace(&t, "quarantine-a").await;
    let (_b, owner_b) = workspace(&t, "quarantine-b").await;
    let form_a = create_form(&t, &owner_a, contact_form()).await;
    let form_b = create_form(&t, &owner_b, contact_form()).await;
    submit(&t, &form_a, bot(1)).await;
    let qid = get(&t, &owner_a, &quarantine_path(&form_a)).await.ids()[0].clone();

    let list = get(&t, &owner_b, &quarantine_path(&form_a)).await;
    assert_eq!((list.status, list.code()), (404, "form_not_found"));
    for (method, path) in [
        (
            "POST",
            format!("{}/{qid}/release", quarantine_path(&form_a)),
        ),
        ("DELETE", format!("{}/{qid}", quarantine_path(&form_a))),
    ] {
        let r = call(&t, &owner_b, method, &path, None).await;
        assert_eq!((r.status, r.code()), (404, "form_not_found"), "{method}");
    }
    // Its own form with the other tenant's id: there is no such submission.
    for (method, path) in [
        (
            "POST",
            format!("{}/{qid}/release", quarantine_path(&form_b)),
        ),
        ("DELETE", format!("{}/{qid}", quarantine_path(&form_b))),
    ] {
        let r = call(&t, &owner_b, method, &path, None).await;
        assert_eq!(
            (r.status, r.code()),
            (404, "quarantine_not_found"),
            "{method}"
        );
    }
    assert!(get(&t, &owner_b, "/v1/leads").await.items().is_empty());
    assert_eq!(
        get(&t, &owner_a, &quarantine_path(&form_a)).await.ids(),
        [qid]
    );
}

#[tokio::test]
async fn a_quarantined_submission_is_deleted_once_and_pages_are_per_form() {
    let t = setup().await;
    let (_tenant, owner) = workspace(&t, "quarantine-pages").await;
    let form = create_form(&t, &owner, contact_form()).await;
    let other = create_form(&t, &owner, contact_form()).await;
    for n in 0..3 {
        submit(&t, &form, bot(n)).await;
    }
    let first = get(&t, &owner, &format!("{}?limit=2", quarantine_path(&form))).await;
    assert_eq!(first.items().len(), 2);
    let cursor = first.cursor().expect("a next page");
    let second = get(
        &t,
        &owner,
        &format!("{}?limit=2&cursor={cursor}", quarantine_path(&form)),
    )
    .await;
    assert_eq!(second.status, 200, "{}", second.body);
    let mut all = first.ids();
    all.extend(second.ids());
    all.dedup();
    assert_eq!(all.len(), 3, "{all:?}");
    let wrong = get(
        &t,
        &owner,
        &format!("{}?cursor={cursor}", quarantine_path(&other)),
    )
    .await;
    assert_eq!(wrong.status, 400, "a cursor is good for its own form only");

    let path = format!("{}/{}", quarantine_path(&form), all[0]);
    assert_eq!(call(&t, &owner, "DELETE", &path, None).await.status, 204);
    let again = call(&t, &owner, "DELETE", &path, None).await;
    assert_eq!((again.status, again.code()), (404, "quarantine_not_found"));
    assert_eq!(
        get(&t, &owner, &quarantine_path(&form)).await.items().len(),
        2
    );
    let bad = call(
        &t,
        &owner,
        "DELETE",
        &format!("{}/nope", quarantine_path(&form)),
        None,
    )
    .await;
    assert_eq!((bad.status, bad.code()), (404, "quarantine_not_found"));
}

#[tokio::test]
async fn a_solved_challenge_counts_once_and_its_replay_is_quarantined() {
    let t = setup().await;
    let (_tenant, owner) = workspace(&t, "quarantine-pow").await;
    let form = create_form(&t, &owner, contact_form()).await;
    let c = challenge(&t, &form).await;
    assert_eq!(c.maxnumber, 50_000, "the form's default difficulty");
    let pow = solved(&c);
    t.w.clock.advance(Duration::seconds(12));

    let person = json!({"email": "ana@example.com", "message": "hello", "_altcha": pow});
    let accepted = submit(&t, &form, person).await;
    let lead = accepted["lead_id"].as_str().unwrap();
    assert_eq!(
        get(&t, &owner, &format!("/v1/leads/{lead}")).await.status,
        200
    );
    let guards = t.w.items_with_sk_prefix("OpsTable", "POW").await;
    assert_eq!(guards.len(), 1, "the challenge is marked used");

    // The same solution again: answered like success, but not a lead.
    let replay = json!({"email": "bot@example.com", "message": "hello", "_altcha": pow});
    submit(&t, &form, replay).await;
    assert_eq!(get(&t, &owner, "/v1/leads").await.items().len(), 1);
    let q = get(&t, &owner, &quarantine_path(&form)).await.items();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0]["reasons"], json!(["pow_replayed"]));

    // Instantly posted: the time trap.
    let c = challenge(&t, &form).await;
    let fast = json!({"email": "fast@example.com", "message": "x", "_altcha": solved(&c)});
    submit(&t, &form, fast).await;
    let q = get(&t, &owner, &quarantine_path(&form)).await.items();
    let mut reasons: Vec<Value> = q.iter().map(|i| i["reasons"].clone()).collect();
    reasons.sort_by_key(|r| r.to_string());
    // (The test clock stands still: both arrived in the same millisecond, in either order.)
    assert_eq!(reasons, [json!(["pow_replayed"]), json!(["too_fast"])]);
}

#[tokio::test]
async fn the_forms_spam_settings_are_edited_through_the_form_and_apply_at_once() {
    let t = setup().await;
    let (_tenant, owner) = workspace(&t, "quarantine-settings").await;
    let form = create_form(&t, &owner, contact_form()).await;
    let f = get(&t, &owner, &format!("/v1/forms/{form}")).await;
    assert_eq!(f.body["spam"]["threshold"], json!(5));
    assert_eq!(f.body["spam"]["pow_required"], json!(false));

    let casino = json!({"email": "ana@example.com", "message": "Best Casino in town"});
    submit(&t, &form, casino.clone()).await;
    assert_eq!(get(&t, &owner, "/v1/leads").await.items().len(), 1);

    let r = call(
        &t,
        &owner,
        "PATCH",
        &format!("/v1/forms/{form}"),
        Some(json!({"spam": {"blocked_words": ["casino"], "min_seconds": 10}})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["spam"]["blocked_words"], json!(["casino"]));
    assert_eq!(r.body["spam"]["min_seconds"], json!(10));
    let bad = call(
        &t,
        &owner,
        "PATCH",
        &format!("/v1/forms/{form}"),
        Some(json!({"spam": {"threshold": 0}})),
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.body);

    let mut other = casino;
    other["email"] = json!("bo@example.com");
    submit(&t, &form, other).await;
    assert_eq!(get(&t, &owner, "/v1/leads").await.items().len(), 1);
    let q = get(&t, &owner, &quarantine_path(&form)).await.items();
    assert_eq!(q[0]["reasons"], json!(["pow_missing", "blocked_word"]));
}

#[tokio::test]
async fn quarantined_posts_count_against_the_minutes_limit_in_the_emulator_too() {
    let t = setup().await;
    let (_tenant, owner) = workspace(&t, "quarantine-rate").await;
    let form = create_form(&t, &owner, contact_form()).await;
    let intake = t.w.intake(Some(shared_leads::intake::IntakeSettings {
        rate_limit_per_ip_per_minute: 2,
        ..t.w.intake_config().settings
    }));
    let mut statuses = vec![];
    for n in 0..3 {
        let mut e = json_submission(&bot(n));
        e["rawPath"] = json!(format!("/v1/forms/{form}/submissions"));
        e["pathParameters"]["formId"] = json!(form);
        statuses.push(
            lead_intake::handle(&intake, request(&e))
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [201, 201, 429]);
    assert_eq!(
        get(&t, &owner, &quarantine_path(&form)).await.items().len(),
        2
    );
}

/// The tenant's own blocklists (issue 19: "per tenant blocklists") apply to every form of the
/// tenant on top of each form's, only to that tenant's forms, and only owners and admins
/// replace them.
#[tokio::test]
async fn the_tenants_blocklists_apply_to_all_its_forms_and_no_other_tenants() {
    let t = setup().await;
    let (tenant, owner) = workspace(&t, "tenant-lists-a").await;
    let (_b, owner_b) = workspace(&t, "tenant-lists-b").await;
    let form1 = create_form(&t, &owner, contact_form()).await;
    let form2 = create_form(&t, &owner, contact_form()).await;
    let form_b = create_form(&t, &owner_b, contact_form()).await;
    let path = "/v1/spam-settings";

    let empty = get(&t, &owner, path).await;
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert_eq!(
        empty.body,
        json!({"blocked_email_domains": [], "blocked_words": []})
    );

    // Only owners and admins replace them; a member reads them.
    let colleague = member(&t, &tenant, Role::Member, "tenant-lists-member").await;
    let lists = json!({"blocked_email_domains": ["@Spam.Example", "spam.example"], "blocked_words": ["Cheap  Pills"]});
    let refused = call(&t, &colleague, "PUT", path, Some(lists.clone())).await;
    assert_eq!((refused.status, refused.code()), (403, "forbidden"));
    let put = call(&t, &owner, "PUT", path, Some(lists.clone())).await;
    assert_eq!(put.status, 200, "{}", put.body);
    let stored =
        json!({"blocked_email_domains": ["spam.example"], "blocked_words": ["cheap pills"]});
    assert_eq!(put.body, stored);
    // A retried PUT sets the same lists.
    let again = call(&t, &owner, "PUT", path, Some(lists)).await;
    assert_eq!(again.body, stored);
    assert_eq!(get(&t, &colleague, path).await.body, stored);
    // Another tenant's are its own.
    assert_eq!(
        get(&t, &owner_b, path).await.body,
        json!({"blocked_email_domains": [], "blocked_words": []})
    );
    // Bad input: 400 naming the field, nothing stored.
    for bad in [
        json!({"blocked_email_domains": ["not a domain"], "blocked_words": []}),
        json!({"blocked_email_domains": [], "blocked_words": [""]}),
        // What docs/openapi.yaml's patterns refuse is refused, not normalised.
        json!({"blocked_email_domains": ["spam..example"], "blocked_words": []}),
        json!({"blocked_email_domains": [" spam.example"], "blocked_words": []}),
        json!({"blocked_email_domains": ["@@spam.example"], "blocked_words": []}),
        json!({"blocked_email_domains": [], "blocked_words": [format!("a{}b", " ".repeat(60))]}),
        json!({"blocked_email_domains": [], "blocked_words": ["tab\there"]}),
        json!({"blocked_email_domains": []}),
        json!({"blocked_email_domains": [], "blocked_words": [], "other": 1}),
    ] {
        let r = call(&t, &owner, "PUT", path, Some(bad.clone())).await;
        assert_eq!(r.status, 400, "{bad} {}", r.body);
        assert!(r.body["error"]["code"].is_string(), "{}", r.body);
    }
    assert_eq!(get(&t, &owner, path).await.body, stored);

    // Every form of the tenant: a blocked domain, a blocked phrase; the form's own lists are
    // empty. (Ordinary addresses, no proof of work: alone they are accepted.)
    submit(
        &t,
        &form1,
        json!({"email": "ana@mail.spam.example", "message": "hello"}),
    )
    .await;
    submit(
        &t,
        &form2,
        json!({"email": "bo@example.com", "message": "Cheap pills here"}),
    )
    .await;
    submit(
        &t,
        &form2,
        json!({"email": "cy@example.com", "message": "hello"}),
    )
    .await;
    assert_eq!(
        get(&t, &owner, "/v1/leads").await.items().len(),
        1,
        "cy only"
    );
    let q1 = get(&t, &owner, &quarantine_path(&form1)).await.items();
    assert_eq!(
        q1[0]["reasons"],
        json!(["pow_missing", "blocked_email_domain"])
    );
    let q2 = get(&t, &owner, &quarantine_path(&form2)).await.items();
    assert_eq!(q2[0]["reasons"], json!(["pow_missing", "blocked_word"]));
    // The other tenant's form is not touched by them.
    submit(
        &t,
        &form_b,
        json!({"email": "ana@mail.spam.example", "message": "Cheap pills"}),
    )
    .await;
    assert_eq!(get(&t, &owner_b, "/v1/leads").await.items().len(), 1);
    assert!(get(&t, &owner_b, &quarantine_path(&form_b))
        .await
        .items()
        .is_empty());

    // Emptied: they apply no more.
    let cleared = call(
        &t,
        &owner,
        "PUT",
        path,
        Some(json!({"blocked_email_domains": [], "blocked_words": []})),
    )
    .await;
    assert_eq!(cleared.status, 200);
    submit(
        &t,
        &form1,
        json!({"email": "dan@mail.spam.example", "message": "hello"}),
    )
    .await;
    assert_eq!(get(&t, &owner, "/v1/leads").await.items().len(), 2);
    // What the route writes on the tenant's record is declared in the data inventory.
    for it in t.w.items_with_sk_prefix("TenantsTable", "TENANT").await {
        for name in it.keys() {
            assert!(
                inventory::declaration(Table::Tenants, "TENANT", name).is_some(),
                "TENANT {name} is not in the inventory"
            );
        }
    }
}

/// A form under attack (many quarantined posts in the last minutes) gets harder proofs of
/// work, within bounds, and the difficulty falls back to the form's own once the attack has
/// stopped for the window; the tenant's other forms are not affected.
#[tokio::test]
async fn a_form_under_attack_gets_harder_challenges_until_the_attack_stops() {
    use shared_core::domain::SpamSettings;
    use shared_leads::spam::{PRESSURE_MAX_FACTOR, PRESSURE_THRESHOLD, PRESSURE_WINDOW_SECS};
    let t = setup().await;
    let (_tenant, owner) = workspace(&t, "quarantine-attack").await;
    let form = create_form(&t, &owner, contact_form()).await;
    let quiet = create_form(&t, &owner, contact_form()).await;
    let own = SpamSettings::DEFAULT_POW_MAX_NUMBER as u64;
    assert_eq!(challenge(&t, &form).await.maxnumber, own);

    // An attack from many addresses, below the rate limits: every post quarantined.
    let attack = |from: usize, to: usize| {
        let t = &t;
        let form = form.clone();
        async move {
            for n in from..to {
                let mut e = json_submission(&bot(n));
                e["rawPath"] = json!(format!("/v1/forms/{form}/submissions"));
                e["pathParameters"]["formId"] = json!(form);
                e["requestContext"]["http"]["sourceIp"] = json!(format!("198.51.100.{}", n % 250));
                let resp = lead_intake::handle(&t.w.intake(None), request(&e)).await;
                assert_eq!(resp.status(), 201, "{}", response_json(&resp));
            }
        }
    };
    let n = PRESSURE_THRESHOLD as usize;
    attack(0, n - 1).await;
    assert_eq!(
        challenge(&t, &form).await.maxnumber,
        own,
        "a few bots are not an attack"
    );
    attack(n - 1, n).await;
    assert_eq!(get(&t, &owner, "/v1/leads").await.items().len(), 0);
    let raised = challenge(&t, &form).await;
    assert_eq!(raised.maxnumber, 2 * own, "raised at the threshold");
    assert_eq!(challenge(&t, &quiet).await.maxnumber, own, "per form");
    // A raised challenge is still one a browser solves, and the proof is accepted.
    let mut person = json!({"email": "ana.attack@example.com", "message": "hello"});
    person["_altcha"] = json!(solved(&raised));
    t.w.clock.advance(time::Duration::seconds(10));
    let mut e = json_submission(&person);
    e["rawPath"] = json!(format!("/v1/forms/{form}/submissions"));
    e["pathParameters"]["formId"] = json!(form);
    assert_eq!(
        lead_intake::handle(&t.w.intake(None), request(&e))
            .await
            .status(),
        201
    );
    assert_eq!(
        get(&t, &owner, "/v1/leads").await.items().len(),
        1,
        "a person gets through"
    );
    // A bigger attack: higher, but never past the bound.
    attack(n, 4 * n).await;
    let max = challenge(&t, &form).await.maxnumber;
    assert!(
        max > 2 * own && max <= u64::from(PRESSURE_MAX_FACTOR) * own,
        "{max}"
    );

    // The attack stops: two windows later the form's own difficulty is back.
    t.w.clock
        .advance(time::Duration::seconds(2 * PRESSURE_WINDOW_SECS));
    assert_eq!(challenge(&t, &form).await.maxnumber, own);
}
