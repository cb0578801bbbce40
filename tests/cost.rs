//! What one submission costs in DynamoDB requests and billed write units, through the real
//! handler against the emulator. These are counts (requests sent, item sizes by DynamoDB's
//! rules), not timings: deterministic, so they are assertions. `make bench` prints the figures.

use integration_tests::*;
use serde_json::json;
use shared_core::metering::{Meter, Usage};

const BATCH_GET: &str = "BatchGetItem";
const TRANSACT_WRITE: &str = "TransactWriteItems";

/// The budget of transactional write units per accepted submission: lead, submission and
/// rate-limit window (2 each: a transaction bills every unit twice), plus 2 for the monthly
/// usage counter the submission quota needs (a 56-byte item; billing, issue 5). It was 6 before
/// the quota: at $0.625 per million write units, $3.75 per million submissions then, $5.00 now.
const MAX_WRITE_UNITS: u64 = 8;

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

type Intake = shared_leads::intake::Intake<
    shared_leads::dynamo::DynamoIntakeStore,
    std::sync::Arc<shared_core::clock::FixedClock>,
    shared_core::clock::UlidGenerator,
>;

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
async fn warm_container_new_and_existing_lead_cost_two_requests_and_at_most_eight_units() {
    let w = world().await;
    let (meter, intake) = warm(&w).await;
    let realistic = fixture("lead-intake/submit-json.json");

    let new_lead = submit(&w, &meter, &intake, &realistic, 201).await;
    assert_eq!(new_lead.operations, [BATCH_GET, TRANSACT_WRITE]);
    assert_eq!(new_lead.failed_requests, 0);
    assert!(
        new_lead.transactional_write_units <= MAX_WRITE_UNITS,
        "{new_lead:#?}"
    );
    assert_eq!(new_lead.write_units, new_lead.transactional_write_units);

    let existing = submit(&w, &meter, &intake, &realistic, 201).await;
    assert_eq!(existing.operations, [BATCH_GET, TRANSACT_WRITE]);
    assert_eq!(
        existing.failed_requests, 0,
        "the lead was seen, not created twice"
    );
    assert!(
        existing.transactional_write_units <= MAX_WRITE_UNITS,
        "{existing:#?}"
    );
    assert_eq!(
        w.items_with_sk_prefix("LeadsTable", "LEAD").await.len(),
        2,
        "the warm-up's lead and the fixture's"
    );
}

#[tokio::test]
async fn rejected_and_honeypot_submissions_cost_one_read_and_no_write() {
    let w = world().await;
    let (meter, intake) = warm(&w).await;

    let invalid = json_submission(&json!({"email": "nope", "phone": "12"}));
    let rejected = submit(&w, &meter, &intake, &invalid, 400).await;
    assert_eq!(rejected.operations, [BATCH_GET]);
    assert_eq!(rejected.total_write_units(), 0);

    let bot = json_submission(&json!({"email": "bot@example.com", "_gotcha": "http://spam"}));
    let honeypot = submit(&w, &meter, &intake, &bot, 201).await;
    assert_eq!(honeypot.operations, [BATCH_GET]);
    assert_eq!(honeypot.total_write_units(), 0);
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
    assert_eq!(cold.operations, ["GetItem", BATCH_GET, TRANSACT_WRITE]);
    assert!(
        cold.transactional_write_units <= MAX_WRITE_UNITS,
        "{cold:#?}"
    );
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
    assert!(
        capped.transactional_write_units <= MAX_WRITE_UNITS,
        "{capped:#?}"
    );
    let usage = w
        .scan("OpsTable")
        .await
        .into_iter()
        .find(|it| s(it, "sk") == Some("USAGE"))
        .expect("the usage counter");
    assert_eq!(usage["form_n_demo-contact"].as_n().unwrap(), "2");
}
