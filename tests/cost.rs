//! What one submission costs in DynamoDB requests, write units and read units, through the real
//! handler against the emulator. These are counts (requests sent, item sizes by DynamoDB's
//! rules), not timings: deterministic, so they are exact assertions. A change that moves a figure
//! must change it here (and in `docs/cost.md`); `make bench` prints the same figures.
//!
//! How the units are computed (`shared_core::metering`, from the requests as sent on the wire, never
//! from the emulator's `ConsumedCapacity`):
//! - every request the instrumented client sends is recorded (operation and JSON body);
//! - write units: each item written is billed `ceil(size / 1 KB)` units, at least 1, where size
//!   is DynamoDB's item size (attribute name bytes + value bytes by type). A put is billed on the
//!   item sent; an update on the item as stored after it (read back through an un-metered
//!   client). Inside `TransactWriteItems` every unit counts twice;
//! - index write units: each global secondary index whose key attributes the written item holds
//!   (for an update: whose key or projected attributes it touches) costs one more write of
//!   `ceil(entry size / 1 KB)` units, entry = table keys + index keys + projected attributes +
//!   100 bytes, billed once (index writes are not transactional);
//! - read units: 1 per key requested with a strongly consistent read (items under 4 KB), 0.5
//!   eventually consistent; a key with no item costs the same.

use integration_tests::*;
use serde_json::json;
use shared_core::metering::{Meter, Usage};

const GET: &str = "GetItem";
const BATCH_GET: &str = "BatchGetItem";
const TRANSACT_WRITE: &str = "TransactWriteItems";

/// Table write units of an accepted submission: three items, each under 1 KB, in one
/// transaction (2 units each): the lead (put or update), the submission, and the tenant's usage
/// counter, which holds the month's count for the quota and the minute's rate-limit counts (one
/// item for both: it was two, 8 units). A suppressed person's submission writes the counter only.
const TABLE_WRU: u64 = 6;
/// With an idempotency key (the embed snippet sends one): its record is a fourth item.
const KEYED_TABLE_WRU: u64 = 8;
/// Index write units of a new lead: `by_email_bidx` and `by_tenant` (the lead),
/// `by_tech_expiry` (the submission). `by_stage` is sparse: a lead in the first stage has no
/// entry there (it was 4).
const NEW_LEAD_GSI_WRU: u64 = 3;
const NEW_LEAD_INDEXES: [&str; 3] = ["by_email_bidx", "by_tech_expiry", "by_tenant"];
/// Index write units of a submission to an existing lead: `by_tech_expiry` only (the lead's
/// update touches no index key or projected attribute).
const EXISTING_LEAD_GSI_WRU: u64 = 1;
/// Read units of the decision's `BatchGetItem` (strongly consistent, one per key): form, tenant,
/// lead, the address's route, its suppression entry, the usage counter (rate counts included),
/// the billing state. An idempotency key adds its record.
const DECIDE_RRU: f64 = 7.0;
const KEYED_DECIDE_RRU: f64 = 8.0;
/// A fresh container's first submission to a form reads the form's tenant first (eventually
/// consistent `GetItem`), then caches it.
const COLD_EXTRA_RRU: f64 = 0.5;

/// With a solved proof-of-work challenge (what the embed snippet posts, issue 19): its
/// single-use guard is one more item in the same transaction (a put of a small item: 2 units),
/// no request added. A plain post without one costs exactly what it did.
const POW_TABLE_WRU: u64 = TABLE_WRU + 2;

async fn world() -> World {
    World::new().await.expect("test world")
}

/// Sends one event through the handler and bills what it sent.
async fn submit(
    w: &World,
    meter: &Meter,
    intake: &Intake,
    event: &serde_json::Value,
    status: u16,
) -> Usage {
    meter.reset();
    let resp = lead_intake::handle(intake, request(event)).await;
    assert_eq!(resp.status(), status, "{}", response_json(&resp));
    let usage = meter.usage(&w.clients.dynamo).await.expect("metering");
    eprintln!(
        "{:?}: txn WCU {}, GSI WCU {}, RCU {}",
        usage.operations, usage.transactional_write_units, usage.gsi_write_units, usage.read_units
    );
    if std::env::var("COST_DEBUG").is_ok() {
        eprintln!("{usage:#?}");
    }
    usage
}

/// Every item written fits in 1 KB (2 transactional units), and the indexes written, by name.
fn indexes_written(usage: &Usage) -> Vec<String> {
    for w in &usage.writes {
        assert!(
            w.item_bytes <= 1024 && w.units == 2,
            "an item over 1 KB costs more: {w:#?}"
        );
    }
    let mut names: Vec<String> = usage
        .writes
        .iter()
        .flat_map(|w| w.index_writes.iter().map(|(name, _, _)| name.clone()))
        .collect();
    names.sort();
    names
}

type Intake = shared_leads::intake::Intake<shared_leads::dynamo::DynamoIntakeStore>;

/// A metered intake whose form-tenant cache is already warm, as in a warm container.
async fn warm(w: &World) -> (Meter, Intake) {
    let meter = w.meter();
    let intake = w.intake_with_client(meter.instrument(&w.clients.dynamo), None);
    let mut e = json_submission(&json!({"email": "warm-up@example.com"}));
    e["requestContext"]["http"]["sourceIp"] = json!("198.51.100.200");
    submit(w, &meter, &intake, &e, 201).await;
    (meter, intake)
}

#[tokio::test]
async fn warm_container_new_and_existing_lead_cost_two_requests_and_their_units() {
    let w = world().await;
    let (meter, intake) = warm(&w).await;
    let realistic = fixture("lead-intake/submit-json.json");

    let new_lead = submit(&w, &meter, &intake, &realistic, 201).await;
    assert_eq!(new_lead.operations, [BATCH_GET, TRANSACT_WRITE]);
    assert_eq!(new_lead.failed_requests, 0);
    assert_eq!(new_lead.writes.len(), 3, "lead, submission, usage counter");
    assert_eq!(
        new_lead.transactional_write_units, TABLE_WRU,
        "{new_lead:#?}"
    );
    assert_eq!(new_lead.write_units, new_lead.transactional_write_units);
    assert_eq!(new_lead.gsi_write_units, NEW_LEAD_GSI_WRU, "{new_lead:#?}");
    assert_eq!(indexes_written(&new_lead), NEW_LEAD_INDEXES);
    assert_eq!(new_lead.total_write_units(), 9);
    assert_eq!(new_lead.read_units, DECIDE_RRU);

    let existing = submit(&w, &meter, &intake, &realistic, 201).await;
    assert_eq!(existing.operations, [BATCH_GET, TRANSACT_WRITE]);
    assert_eq!(
        existing.failed_requests, 0,
        "the lead was seen, not created twice"
    );
    assert_eq!(
        existing.transactional_write_units, TABLE_WRU,
        "{existing:#?}"
    );
    assert_eq!(
        existing.gsi_write_units, EXISTING_LEAD_GSI_WRU,
        "{existing:#?}"
    );
    assert_eq!(indexes_written(&existing), ["by_tech_expiry"]);
    assert_eq!(existing.total_write_units(), 7);
    assert_eq!(existing.read_units, DECIDE_RRU);
    assert_eq!(
        w.items_with_sk_prefix("LeadsTable", "LEAD").await.len(),
        2,
        "the warm-up's lead and the fixture's"
    );
}

/// What the embed snippet posts: a CORS-simple request (URL-encoded, `Accept: application/json`,
/// the idempotency key in the body), so no preflight reaches the API. Its key costs a fourth item
/// in the transaction and a fourth key in the read; its retry is answered from the record.
#[tokio::test]
async fn the_embed_snippets_post_costs_two_requests_and_its_key_one_more_item() {
    let w = world().await;
    let (meter, intake) = warm(&w).await;
    let snippet = fixture("lead-intake/submit-embed.json");

    let new_lead = submit(&w, &meter, &intake, &snippet, 201).await;
    assert_eq!(new_lead.operations, [BATCH_GET, TRANSACT_WRITE]);
    assert_eq!(new_lead.failed_requests, 0);
    assert_eq!(new_lead.writes.len(), 4, "lead, submission, counter, key");
    assert_eq!(
        new_lead.transactional_write_units, KEYED_TABLE_WRU,
        "{new_lead:#?}"
    );
    assert_eq!(new_lead.gsi_write_units, NEW_LEAD_GSI_WRU, "{new_lead:#?}");
    assert_eq!(indexes_written(&new_lead), NEW_LEAD_INDEXES);
    assert_eq!(new_lead.total_write_units(), 11);
    assert_eq!(new_lead.read_units, KEYED_DECIDE_RRU);

    let retry = submit(&w, &meter, &intake, &snippet, 201).await;
    assert_eq!(retry.operations, [BATCH_GET], "replayed from the read");
    assert_eq!(retry.total_write_units(), 0);
    assert_eq!(retry.read_units, KEYED_DECIDE_RRU);
}

/// The embed snippet as a browser runs it: a challenge issued for its page's idempotency key
/// (`GET …/challenge?key=`, two small reads), solved, then the post with the solution and the
/// key. The key's record is the challenge's single use, so the post writes what a keyed post
/// without a challenge writes: no guard item (it was a fifth, 2 units more). The solution under
/// another key is a bot's reuse: refused as proof, kept apart; under the same key it is the
/// same post, answered from the record.
#[tokio::test]
async fn the_embed_snippets_challenge_costs_two_reads_and_its_post_no_guard_item() {
    let w = world().await;
    let (meter, intake) = warm(&w).await;
    let key = "3f1c9a52-7d4e-4b8a-9c0e-2a6f1d8b7e43";
    let form = w.form.form_id.as_str().to_string();

    meter.reset();
    let resp = lead_intake::handle(&intake, request(&challenge_event(&form, Some(key)))).await;
    assert_eq!(resp.status(), 200, "{}", response_json(&resp));
    let issuing = meter.usage(&w.clients.dynamo).await.expect("metering");
    assert_eq!(issuing.operations, [GET, "Query"], "{issuing:#?}");
    assert_eq!(issuing.total_write_units(), 0);
    assert_eq!(
        issuing.read_units, 1.0,
        "the form and the pressure window, eventually consistent"
    );
    let challenge: shared_leads::spam::pow::Challenge =
        serde_json::from_value(response_json(&resp)).expect("an ALTCHA challenge");
    let pow = shared_leads::spam::pow::solve(&challenge).unwrap().encode();
    w.clock.advance(time::Duration::seconds(10));

    let mut post = fixture("lead-intake/submit-embed.json");
    let body = format!(
        "{}&_altcha={}",
        post["body"].as_str().unwrap(),
        urlencoding(&pow)
    );
    post["body"] = json!(body);
    assert!(body.contains(&format!("_idempotency_key={key}")));
    let person = submit(&w, &meter, &intake, &post, 201).await;
    assert_eq!(person.operations, [BATCH_GET, TRANSACT_WRITE]);
    assert_eq!(person.failed_requests, 0);
    assert_eq!(
        person.writes.len(),
        4,
        "lead, submission, counter, key: no guard"
    );
    assert_eq!(
        person.transactional_write_units, KEYED_TABLE_WRU,
        "{person:#?}"
    );
    assert_eq!(person.gsi_write_units, NEW_LEAD_GSI_WRU, "{person:#?}");
    assert!(w.items_with_sk_prefix("OpsTable", "POW").await.is_empty());
    assert_eq!(w.items_with_sk_prefix("LeadsTable", "LEAD").await.len(), 2);

    // The same post again (a double click, a retry): the first answer, nothing written.
    let retry = submit(&w, &meter, &intake, &post, 201).await;
    assert_eq!(retry.operations, [BATCH_GET]);
    assert_eq!(retry.total_write_units(), 0);

    // The solution reused by a bot under its own key: no proof, kept apart, no lead.
    let reused = body
        .replace(key, "bot-key-0001")
        .replace("maria.ionescu", "bot");
    let mut bot = post.clone();
    bot["body"] = json!(reused);
    submit(&w, &meter, &intake, &bot, 201).await;
    assert_eq!(w.items_with_sk_prefix("LeadsTable", "LEAD").await.len(), 2);
    let kept = w.items_with_sk_prefix("OpsTable", "Q#").await;
    assert_eq!(kept.len(), 1, "{kept:#?}");
    assert!(format!("{kept:?}").contains("pow_invalid"), "{kept:#?}");

    // Under the page's key with another body: the key's record refuses it (422), nothing stored.
    let mut other = post.clone();
    other["body"] = json!(body.replace("maria.ionescu", "someone.else"));
    let refused = submit(&w, &meter, &intake, &other, 422).await;
    assert_eq!(refused.total_write_units(), 0);
    assert_eq!(w.items_with_sk_prefix("LeadsTable", "LEAD").await.len(), 2);
}

/// `application/x-www-form-urlencoded` value encoding, as `URLSearchParams` does it.
fn urlencoding(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

#[tokio::test]
async fn rejected_and_honeypot_submissions_cost_one_read_and_no_write() {
    let w = world().await;
    let (meter, intake) = warm(&w).await;

    // Refused before the contact is known: form, tenant, counter and billing state only.
    let invalid = json_submission(&json!({"email": "nope", "phone": "12"}));
    let rejected = submit(&w, &meter, &intake, &invalid, 400).await;
    assert_eq!(rejected.operations, [BATCH_GET]);
    assert_eq!(rejected.total_write_units(), 0);
    assert_eq!(rejected.read_units, 4.0);

    let bot = json_submission(&json!({"email": "bot@example.com", "_gotcha": "http://spam"}));
    let honeypot = submit(&w, &meter, &intake, &bot, 201).await;
    assert_eq!(honeypot.operations, [BATCH_GET]);
    assert_eq!(honeypot.total_write_units(), 0);
    assert_eq!(honeypot.read_units, DECIDE_RRU);
}

/// A person erased on request (on the tenant's suppression list) is answered like anyone else
/// and counts against the limits and the quota like anyone else: the usage counter is the one
/// item written, nothing of the person.
#[tokio::test]
async fn a_suppressed_persons_submission_writes_the_usage_counter_only() {
    let w = world().await;
    let (meter, intake) = warm(&w).await;
    let email = shared_core::domain::Email::parse("erased@example.com").unwrap();
    let k = shared_core::keys::suppression(&w.tenant, &w.key.email(&email));
    w.clients
        .dynamo
        .put_item()
        .table_name(w.table("PrivacyTable"))
        .item("pk", aws_sdk_dynamodb::types::AttributeValue::S(k.pk))
        .item("sk", aws_sdk_dynamodb::types::AttributeValue::S(k.sk))
        .send()
        .await
        .unwrap();
    let event = json_submission(&json!({"email": "erased@example.com"}));
    let suppressed = submit(&w, &meter, &intake, &event, 201).await;
    assert_eq!(suppressed.operations, [BATCH_GET, TRANSACT_WRITE]);
    assert_eq!(suppressed.writes.len(), 1, "{suppressed:#?}");
    assert_eq!(suppressed.transactional_write_units, 2);
    assert_eq!(suppressed.gsi_write_units, 0);
    assert_eq!(suppressed.read_units, DECIDE_RRU);
}

#[tokio::test]
async fn a_fresh_containers_first_submission_pays_one_more_read() {
    let w = world().await;
    let meter = w.meter();
    let intake = w.intake_with_client(meter.instrument(&w.clients.dynamo), None);
    let cold = submit(
        &w,
        &meter,
        &intake,
        &fixture("lead-intake/submit-json.json"),
        201,
    )
    .await;
    assert_eq!(cold.operations, [GET, BATCH_GET, TRANSACT_WRITE]);
    assert_eq!(cold.transactional_write_units, TABLE_WRU, "{cold:#?}");
    assert_eq!(cold.gsi_write_units, NEW_LEAD_GSI_WRU, "{cold:#?}");
    assert_eq!(cold.read_units, DECIDE_RRU + COLD_EXTRA_RRU);
}

/// A form with a daily cap keeps the shape: its day count is two attributes of the usage counter
/// the transaction updates anyway (no item, no request added), and the item stays one unit.
#[tokio::test]
async fn a_capped_forms_submission_costs_the_same_two_requests() {
    let w = world().await;
    let mut form = w.form.clone();
    form.daily_cap = Some(1000);
    w.put_tenant(&w.tenant, shared_core::domain::TenantStatus::Active, &form)
        .await
        .unwrap();
    let (meter, intake) = warm(&w).await;
    let capped = submit(
        &w,
        &meter,
        &intake,
        &fixture("lead-intake/submit-json.json"),
        201,
    )
    .await;
    assert_eq!(capped.operations, [BATCH_GET, TRANSACT_WRITE]);
    assert_eq!(capped.failed_requests, 0);
    assert_eq!(capped.transactional_write_units, TABLE_WRU, "{capped:#?}");
    assert_eq!(capped.gsi_write_units, NEW_LEAD_GSI_WRU);
    let usage = w
        .scan("OpsTable")
        .await
        .into_iter()
        .find(|it| s(it, "sk") == Some("USAGE"))
        .expect("the usage counter");
    assert_eq!(usage["form_n_demo-contact"].as_n().unwrap(), "2");
}

/// A submission with a solved challenge: still one read and one transaction; the challenge's
/// guard is a fourth item of that transaction. A quarantined one is one read and one
/// transaction of three items: the record, the usage counter (the minute's rate counts only;
/// no lead, no quota count) and the form's count of quarantined posts in the current window
/// (what raises its challenges' difficulty under attack), its guard a fourth; the record is in
/// two indexes of the ops table.
#[tokio::test]
async fn a_proof_of_work_submission_costs_the_same_two_requests_and_one_more_item() {
    let w = world().await;
    let (meter, intake) = warm(&w).await;
    // The challenge: the form, and the form's quarantined posts of the last windows (its
    // difficulty under attack): two small reads, whatever the number of quarantined posts.
    meter.reset();
    let (_, challenge) = intake.challenge(&w.form.form_id, None).await.unwrap();
    let issuing = meter.usage(&w.clients.dynamo).await.expect("metering");
    assert_eq!(issuing.operations, ["GetItem", "Query"], "{issuing:#?}");
    let pow = shared_leads::spam::pow::solve(&challenge).unwrap().encode();
    w.clock.advance(time::Duration::seconds(10));
    let mut body: serde_json::Value = serde_json::from_str(
        fixture("lead-intake/submit-json.json")["body"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    body["_altcha"] = json!(pow);
    let person = submit(&w, &meter, &intake, &json_submission(&body), 201).await;
    assert_eq!(person.operations, [BATCH_GET, TRANSACT_WRITE]);
    assert_eq!(person.failed_requests, 0);
    assert_eq!(person.writes.len(), 4, "lead, submission, counter, guard");
    assert_eq!(
        person.transactional_write_units, POW_TABLE_WRU,
        "{person:#?}"
    );
    assert_eq!(person.gsi_write_units, NEW_LEAD_GSI_WRU, "{person:#?}");
    assert_eq!(indexes_written(&person), NEW_LEAD_INDEXES);
    assert_eq!(person.read_units, DECIDE_RRU, "nothing more read");

    // Its replay: refused by the guard's condition, then quarantined.
    body["email"] = json!("replay@example.com");
    let replay = submit(&w, &meter, &intake, &json_submission(&body), 201).await;
    assert_eq!(
        replay.operations,
        [BATCH_GET, TRANSACT_WRITE, TRANSACT_WRITE]
    );
    assert_eq!(replay.failed_requests, 1, "the refused transaction");
    assert_eq!(
        replay.writes.len(),
        7,
        "the refused transaction's four items, then the record, the counter and the form's \
         pressure window"
    );

    // A bot without a challenge and with a disposable address: one item, and its two entries
    // in the ops table's indexes (`by_subject`: data-subject requests find it; `by_expiry`:
    // retention removes it after 30 days). No request more; the accepted ones above write none.
    let bot = json_submission(&json!({"email": "x@mailinator.com", "message": "hi"}));
    let quarantined = submit(&w, &meter, &intake, &bot, 201).await;
    assert_eq!(quarantined.operations, [BATCH_GET, TRANSACT_WRITE]);
    assert_eq!(
        quarantined.writes.len(),
        3,
        "the record, the counter and the form's pressure window (its challenges' difficulty)"
    );
    assert_eq!(quarantined.transactional_write_units, 6);
    assert_eq!(quarantined.gsi_write_units, 2, "{quarantined:#?}");
}
