//! Retention cleanup against the emulated DynamoDB and S3, with an injected clock: data of many
//! ages, runs dated the day before, of and after each item's end.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::*;
use retention_cleanup::config::Config;
use retention_cleanup::{App, Limits};
use serde_json::{json, Value};
use shared_accounts::dynamo::{AccountStore, AccountTables};
use shared_accounts::{OneTimeToken, SecurityEvent, Session, TokenKind};
use shared_core::clock::{rfc3339, Clock, UlidGenerator};
use shared_core::config::Env;
use shared_core::domain::{Email, FormId, LeadId, SessionId, TenantId, TenantStatus, UserId};
use shared_core::dynamo::Item;
use shared_core::keys::{self, Key};
use shared_core::retention::{self, rule};
use shared_privacy::inventory::{self, Table};
use shared_privacy::legal_holds::{self, HeldItem, HoldKind};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

async fn world() -> World {
    World::new().await.expect("test world")
}

/// The function's app as `main.rs` builds it, over this world's tables and clock, its
/// configuration exactly as the (local) template gives it; the first run looks 2 days back.
fn app(w: &World) -> App {
    let env =
        infra::local::local_function_env(&w.template, "retention-cleanup", emulator_endpoint())
            .expect("function env");
    let mut config = Config::from_env(&Env::from_pairs(env)).expect("template env is valid");
    config.settings.catch_up_days = 2;
    App {
        dynamo: w.clients.dynamo.clone(),
        s3: w.clients.s3.clone(),
        tables: config.tables,
        buckets: config.buckets,
        key: w.key.clone(),
        clock: w.clock.clone(),
        ids: Arc::new(UlidGenerator),
        settings: config.settings,
    }
}

fn event(at: OffsetDateTime, dry_run: bool) -> Value {
    let mut e = fixture(if dry_run {
        "retention-cleanup/dry-run.json"
    } else {
        "retention-cleanup/scheduled.json"
    });
    e["time"] = json!(rfc3339(at));
    e
}

/// A scheduled run at `at` (the clock says the same time).
async fn run_at(w: &World, app: &App, at: OffsetDateTime) -> Value {
    w.clock.set(at);
    let report = retention_cleanup::handle(app, &event(at, false), Limits::default()).await;
    assert_eq!(report["status"], "completed", "{report:#}");
    report
}

fn deleted(report: &Value, rule_name: &str) -> u64 {
    report["rules"][rule_name]["deleted"].as_u64().unwrap_or(0)
}

fn key_av(k: &Key) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_string(), AttributeValue::S(k.pk.clone())),
        ("sk".to_string(), AttributeValue::S(k.sk.clone())),
    ])
}

async fn put(w: &World, table: &str, item: Item) {
    w.clients
        .dynamo
        .put_item()
        .table_name(w.table(table))
        .set_item(Some(item))
        .send()
        .await
        .expect("put");
}

async fn get(w: &World, table: &str, k: &Key) -> Option<Item> {
    w.clients
        .dynamo
        .get_item()
        .table_name(w.table(table))
        .set_key(Some(key_av(k)))
        .consistent_read(true)
        .send()
        .await
        .expect("get")
        .item
}

async fn set_attr(w: &World, table: &str, k: &Key, name: &str, v: AttributeValue) {
    w.clients
        .dynamo
        .update_item()
        .table_name(w.table(table))
        .set_key(Some(key_av(k)))
        .update_expression("SET #n = :v")
        .expression_attribute_names("#n", name)
        .expression_attribute_values(":v", v)
        .send()
        .await
        .expect("update");
}

fn raw(k: &Key, attrs: &[(&str, &str)]) -> Item {
    let mut it = key_av(k);
    for (n, v) in attrs {
        it.insert(n.to_string(), AttributeValue::S(v.to_string()));
    }
    it
}

/// Sets or clears a legal hold the documented way: the item's `legal_hold` attribute and its
/// entry in the holds registry (ops table), in one transaction.
async fn legal_hold(w: &World, table: &str, kind: HoldKind, k: &Key, on: bool) {
    let held = HeldItem {
        kind,
        key: k.clone(),
    };
    let found = legal_holds::set_legal_hold(
        &w.clients.dynamo,
        &w.table(table),
        &w.table("OpsTable"),
        &held,
        on,
        w.clock.now(),
    )
    .await
    .expect("legal hold");
    assert!(found, "the held item exists");
}

/// The holds registry's items.
async fn registry(w: &World) -> Vec<Item> {
    w.clients
        .dynamo
        .query()
        .table_name(w.table("OpsTable"))
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", AttributeValue::S(keys::LEGAL_HOLDS_PARTITION.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("query registry")
        .items
        .unwrap_or_default()
}

fn account_store(w: &World) -> AccountStore {
    AccountStore::new(
        w.clients.dynamo.clone(),
        AccountTables {
            tenants: w.table("TenantsTable"),
            security_log: w.table("SecurityLogTable"),
            ops: w.table("OpsTable"),
        },
        180,
    )
}

fn session(t: &TenantId, user: &str, id: &str, absolute: OffsetDateTime) -> Session {
    Session {
        session_id: SessionId::parse(id).unwrap(),
        user_id: UserId::parse(user).unwrap(),
        tenant_id: t.clone(),
        refresh_hash: "h".into(),
        previous_hashes: vec![],
        created_at: absolute - Duration::days(30),
        last_used_at: absolute - Duration::days(30),
        idle_expires_at: absolute - Duration::days(16),
        absolute_expires_at: absolute,
        revoked_at: None,
        ip: Some("198.51.100.77".into()),
        user_agent: Some("SecretBrowser/1.0".into()),
    }
}

fn security_event(t: &TenantId, at: OffsetDateTime) -> SecurityEvent {
    SecurityEvent {
        tenant_id: Some(t.clone()),
        event: "login_succeeded",
        user_id: None,
        actor_user_id: None,
        session_id: None,
        api_key_id: None,
        ip_hash: Some("abc".into()),
        email_hash: None,
        detail: None,
        at,
    }
}

async fn submit(w: &World, form: &FormId, email: &str) -> (LeadId, String) {
    let mut e = json_submission(&json!({
        "email": email, "name": "Ana Secret", "message": "Hello", "consent_marketing": true
    }));
    e["rawPath"] = json!(format!("/v1/forms/{form}/submissions"));
    e["pathParameters"] = json!({ "formId": form.as_str() });
    let resp = lead_intake::handle(&w.intake(None), request(&e)).await;
    assert_eq!(resp.status(), 201, "{:?}", response_json(&resp));
    let body = response_json(&resp);
    (
        LeadId::parse(body["lead_id"].as_str().unwrap()).unwrap(),
        body["submission_id"].as_str().unwrap().to_string(),
    )
}

// ---------------------------------------------------------------- rules, day by day

#[tokio::test]
async fn tokens_and_sessions_disappear_on_the_day_after_their_end() {
    let w = world().await;
    let app = app(&w);
    let store = account_store(&w);
    let t0 = datetime!(2026-01-10 10:00 UTC);
    let token = OneTimeToken {
        secret_hash: "tok1".into(),
        kind: TokenKind::PasswordReset,
        tenant_id: w.tenant.clone(),
        user_id: Some(UserId::parse("u1").unwrap()),
        email: None,
        email_sealed: None,
        role: None,
        invited_by: None,
        expires_at: t0 + Duration::hours(2),
    };
    put(
        &w,
        "TenantsTable",
        shared_accounts::dynamo::token_item(&token),
    )
    .await;
    let s = session(&w.tenant, "u1", "s1", t0 + Duration::days(30));
    put(
        &w,
        "TenantsTable",
        shared_accounts::dynamo::session_item(&s),
    )
    .await;
    let _ = store; // the writers are the auth store's item builders
    let token_key = keys::one_time_token("tok1");
    let session_key = keys::session(&s.session_id);

    let at = |d: &str| {
        OffsetDateTime::parse(
            &format!("{d}T03:00:00Z"),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    let r = run_at(&w, &app, at("2026-01-10")).await;
    assert_eq!(deleted(&r, rule::TOKEN), 0);
    assert!(
        get(&w, "TenantsTable", &token_key).await.is_some(),
        "the token's day"
    );
    let r = run_at(&w, &app, at("2026-01-11")).await;
    assert_eq!(deleted(&r, rule::TOKEN), 1);
    assert!(get(&w, "TenantsTable", &token_key).await.is_none());
    assert!(get(&w, "TenantsTable", &session_key).await.is_some());
    let r = run_at(&w, &app, at("2026-02-09")).await;
    assert_eq!(deleted(&r, rule::SESSION), 0, "{r:#}");
    assert!(
        get(&w, "TenantsTable", &session_key).await.is_some(),
        "last day of the session"
    );
    let r = run_at(&w, &app, at("2026-02-10")).await;
    assert_eq!(deleted(&r, rule::SESSION), 1);
    assert!(get(&w, "TenantsTable", &session_key).await.is_none());
    // the run after: nothing left, nothing failed
    let r = run_at(&w, &app, at("2026-02-11")).await;
    assert_eq!(r["failures"], json!([]));
    assert_eq!(r["days"], json!(["2026-02-11", "2026-02-11"]));
}

#[tokio::test]
async fn security_events_go_180_days_later_and_a_raised_period_is_honoured() {
    let w = world().await;
    let mut app = app(&w);
    let store = account_store(&w);
    let t0 = datetime!(2026-01-10 10:00 UTC);
    let e1 = security_event(&w.tenant, t0);
    let e2 = security_event(&w.tenant, t0 + Duration::days(1));
    let i1 = store.event_item(&e1, "ev1");
    let i2 = store.event_item(&e2, "ev2");
    let k1 = Key {
        pk: s(&i1, "pk").unwrap().into(),
        sk: s(&i1, "sk").unwrap().into(),
    };
    let k2 = Key {
        pk: s(&i2, "pk").unwrap().into(),
        sk: s(&i2, "sk").unwrap().into(),
    };
    put(&w, "SecurityLogTable", i1).await;
    put(&w, "SecurityLogTable", i2).await;

    // 180 days after 2026-01-10 10:00 is 2026-07-09 10:00: gone with the run of 2026-07-10.
    run_at(&w, &app, datetime!(2026-07-09 03:00 UTC)).await;
    assert!(get(&w, "SecurityLogTable", &k1).await.is_some());
    let r = run_at(&w, &app, datetime!(2026-07-10 03:00 UTC)).await;
    assert_eq!(deleted(&r, rule::SECURITY_LOG), 1);
    assert!(get(&w, "SecurityLogTable", &k1).await.is_none());
    assert!(get(&w, "SecurityLogTable", &k2).await.is_some());

    // The period raised to 200 days after e2 was written: e2 is kept and moved to its new day.
    app.settings.security_log_days = 200;
    let r = run_at(&w, &app, datetime!(2026-07-11 03:00 UTC)).await;
    assert_eq!(deleted(&r, rule::SECURITY_LOG), 0);
    assert_eq!(r["rules"][rule::SECURITY_LOG]["deferred"], 1);
    let kept = get(&w, "SecurityLogTable", &k2).await.expect("kept");
    assert!(
        s(&kept, "exp_bucket")
            .unwrap()
            .starts_with("EXP#security-log#2026-07-31#"),
        "{kept:?}"
    );
}

#[tokio::test]
async fn technical_data_leaves_after_90_days_and_the_submission_stays() {
    let w = world().await;
    let app = app(&w);
    w.clock.set(datetime!(2026-01-10 10:00 UTC));
    let (lead, sub) = submit(&w, &w.form.form_id.clone(), "ana@example.com").await;
    let (held_lead, held_sub) = submit(&w, &w.form.form_id.clone(), "bob@example.com").await;
    legal_hold(
        &w,
        "LeadsTable",
        HoldKind::Lead,
        &keys::lead(&w.tenant, &held_lead),
        true,
    )
    .await;
    let sub_key = keys::submission(
        &w.tenant,
        &lead,
        &shared_core::domain::SubmissionId::parse(&sub).unwrap(),
    );
    let held_key = keys::submission(
        &w.tenant,
        &held_lead,
        &shared_core::domain::SubmissionId::parse(&held_sub).unwrap(),
    );
    let technical = ["ip", "user_agent", "referrer", "page_url"];

    // Received 2026-01-10: kept 90 days, through 2026-04-10.
    run_at(&w, &app, datetime!(2026-04-10 03:00 UTC)).await;
    let it = get(&w, "LeadsTable", &sub_key).await.unwrap();
    assert!(s(&it, "ip").is_some(), "still there on its last day");
    let r = run_at(&w, &app, datetime!(2026-04-11 03:00 UTC)).await;
    assert_eq!(deleted(&r, rule::TECH_DATA), 1, "{r:#}");
    let it = get(&w, "LeadsTable", &sub_key)
        .await
        .expect("the submission stays");
    for a in technical {
        assert!(!it.contains_key(a), "{a} removed");
    }
    assert!(!it.contains_key("tech_exp"), "out of the index");
    assert!(it.contains_key("fields") && it.contains_key("consents"));
    assert!(get(&w, "LeadsTable", &keys::lead(&w.tenant, &lead))
        .await
        .is_some());

    // The held lead's submission keeps its technical data, reported, and again the next day.
    let it = get(&w, "LeadsTable", &held_key).await.unwrap();
    assert!(s(&it, "ip").is_some());
    assert_eq!(r["rules"][rule::TECH_DATA]["held"], 1);
    // No lead was read for its hold: the two submissions from the index and the registry's one
    // entry (before: one more item per lead).
    assert_eq!(r["rules"][rule::TECH_DATA]["found"], 2, "{r:#}");
    assert_eq!(r["items_read"], 3, "{r:#}");
    assert_eq!(r["held_items"][0]["kind"], "lead");
    assert_eq!(
        r["held_items"][0]["id"],
        format!("{}/{}", w.tenant, held_lead)
    );
    let r = run_at(&w, &app, datetime!(2026-04-12 03:00 UTC)).await;
    assert_eq!(r["rules"][rule::TECH_DATA]["held"], 1, "reported daily");
    // Hold lifted: removed by the next run.
    legal_hold(
        &w,
        "LeadsTable",
        HoldKind::Lead,
        &keys::lead(&w.tenant, &held_lead),
        false,
    )
    .await;
    assert_eq!(
        registry(&w).await,
        vec![],
        "the registry entry goes with the hold"
    );
    let r = run_at(&w, &app, datetime!(2026-04-13 03:00 UTC)).await;
    assert_eq!(deleted(&r, rule::TECH_DATA), 1);
    assert_eq!(r["held_items"], json!([]));
    assert!(s(&get(&w, "LeadsTable", &held_key).await.unwrap(), "ip").is_none());
}

fn billing_item(t: &TenantId, sk: &str, retain_until: time::Date) -> Item {
    let k = Key {
        pk: keys::billing_partition(t),
        sk: sk.to_string(),
    };
    let bucket = retention::expiry_bucket_for(rule::BILLING, retain_until, &k);
    raw(
        &k,
        &[
            ("tenant_id", t.as_str()),
            ("retain_until", &retain_until.to_string()),
            ("exp_bucket", &bucket),
        ],
    )
}

#[tokio::test]
async fn billing_records_are_kept_until_their_legal_end_and_holds_are_reported() {
    let w = world().await;
    let app = app(&w);
    // Documents of 2026 are kept until 1 July 2032, those of 2027 a year longer.
    let until_2026 = retention::billing_retain_until(time::macros::date!(2026 - 05 - 20));
    let until_2027 = retention::billing_retain_until(time::macros::date!(2027 - 01 - 02));
    put(
        &w,
        "BillingTable",
        billing_item(&w.tenant, "INVOICE#in_1", until_2026),
    )
    .await;
    put(
        &w,
        "BillingTable",
        billing_item(&w.tenant, "INVOICE#in_2", until_2026),
    )
    .await;
    put(
        &w,
        "BillingTable",
        billing_item(&w.tenant, "INVOICE#in_3", until_2027),
    )
    .await;
    let k = |sk: &str| Key {
        pk: keys::billing_partition(&w.tenant),
        sk: sk.into(),
    };
    set_attr(
        &w,
        "BillingTable",
        &k("INVOICE#in_2"),
        "legal_hold",
        AttributeValue::Bool(true),
    )
    .await;

    run_at(&w, &app, datetime!(2032-06-30 03:00 UTC)).await;
    for sk in ["INVOICE#in_1", "INVOICE#in_2", "INVOICE#in_3"] {
        assert!(get(&w, "BillingTable", &k(sk)).await.is_some(), "{sk}");
    }
    let r = run_at(&w, &app, datetime!(2032-07-01 03:00 UTC)).await;
    assert_eq!(deleted(&r, rule::BILLING), 1);
    assert!(get(&w, "BillingTable", &k("INVOICE#in_1")).await.is_none());
    assert!(
        get(&w, "BillingTable", &k("INVOICE#in_2")).await.is_some(),
        "held"
    );
    assert!(get(&w, "BillingTable", &k("INVOICE#in_3")).await.is_some());
    assert_eq!(r["rules"][rule::BILLING]["held"], 1);
    assert_eq!(
        r["held_items"],
        json!([{"rule": "billing", "kind": "billing", "id": format!("{}/INVOICE#in_2", w.tenant)}])
    );
    let r = run_at(&w, &app, datetime!(2032-07-02 03:00 UTC)).await;
    assert_eq!(r["rules"][rule::BILLING]["held"], 1, "reported every day");
}

#[tokio::test]
async fn billing_holds_come_from_the_registry_and_the_records_own_hold_still_wins() {
    let w = world().await;
    let app = app(&w);
    let until = retention::billing_retain_until(time::macros::date!(2026 - 05 - 20));
    let k = |sk: &str| Key {
        pk: keys::billing_partition(&w.tenant),
        sk: sk.into(),
    };
    for sk in [
        "INVOICE#in_1",
        "INVOICE#in_2",
        "INVOICE#in_3",
        "PAYMENT#py_1",
    ] {
        put(&w, "BillingTable", billing_item(&w.tenant, sk, until)).await;
    }
    // Held the documented way: attribute and registry entry.
    legal_hold(
        &w,
        "BillingTable",
        HoldKind::Billing,
        &k("INVOICE#in_2"),
        true,
    )
    .await;
    let entries = registry(&w).await;
    assert_eq!(entries.len(), 1);
    let sk = s(&entries[0], "sk").unwrap().to_string();
    assert!(sk.starts_with(keys::LEGAL_HOLD_PREFIX), "{sk}");
    for name in entries[0].keys() {
        assert!(
            inventory::declaration(Table::Ops, &sk, name).is_some(),
            "{sk} {name}"
        );
    }
    assert_eq!(
        get(&w, "BillingTable", &k("INVOICE#in_2")).await.unwrap()["legal_hold"],
        AttributeValue::Bool(true)
    );
    // A hold the registry does not list when the run reads it (set after that read, or by hand
    // on the item alone): the conditional delete sees the record's own attribute.
    set_attr(
        &w,
        "BillingTable",
        &k("INVOICE#in_3"),
        "legal_hold",
        AttributeValue::Bool(true),
    )
    .await;

    let r = run_at(&w, &app, datetime!(2032-07-01 03:00 UTC)).await;
    assert_eq!(deleted(&r, rule::BILLING), 2, "{r:#}");
    assert!(get(&w, "BillingTable", &k("INVOICE#in_1")).await.is_none());
    assert!(get(&w, "BillingTable", &k("PAYMENT#py_1")).await.is_none());
    assert!(get(&w, "BillingTable", &k("INVOICE#in_2")).await.is_some());
    assert!(get(&w, "BillingTable", &k("INVOICE#in_3")).await.is_some());
    assert_eq!(r["rules"][rule::BILLING]["held"], 2, "{r:#}");
    // Read: the 4 records from the index, the registry's entry, and only the record the
    // condition refused (in_3); neither the registered one nor the deleted ones.
    assert_eq!(r["rules"][rule::BILLING]["found"], 4, "{r:#}");
    assert_eq!(r["items_read"], 4 + 1 + 1, "{r:#}");

    // Cleared the documented way: the registry entry goes with the attribute, and the next run
    // deletes the record; the other hold still holds.
    legal_hold(
        &w,
        "BillingTable",
        HoldKind::Billing,
        &k("INVOICE#in_2"),
        false,
    )
    .await;
    assert_eq!(registry(&w).await, vec![]);
    let r = run_at(&w, &app, datetime!(2032-07-02 03:00 UTC)).await;
    assert_eq!(deleted(&r, rule::BILLING), 1, "{r:#}");
    assert!(get(&w, "BillingTable", &k("INVOICE#in_2")).await.is_none());
    assert!(get(&w, "BillingTable", &k("INVOICE#in_3")).await.is_some());
    assert_eq!(
        r["held_items"],
        json!([{"rule": "billing", "kind": "billing", "id": format!("{}/INVOICE#in_3", w.tenant)}])
    );

    // A hold on a missing record is refused and registers nothing.
    let missing = HeldItem {
        kind: HoldKind::Billing,
        key: k("INVOICE#nope"),
    };
    let found = legal_holds::set_legal_hold(
        &w.clients.dynamo,
        &w.table("BillingTable"),
        &w.table("OpsTable"),
        &missing,
        true,
        w.clock.now(),
    )
    .await
    .unwrap();
    assert!(!found);
    assert_eq!(registry(&w).await, vec![]);
    assert!(get(&w, "BillingTable", &k("INVOICE#nope")).await.is_none());
}

#[tokio::test]
async fn export_records_and_objects_after_7_days_and_dsar_records_on_their_day() {
    let w = world().await;
    let app = app(&w);
    let t0 = datetime!(2026-03-01 09:30 UTC);
    let export = shared_leads::transfers::ExportId::parse("ex1").unwrap();
    let rec = keys::export_record(&w.tenant, &export);
    let bucket = retention::expiry_bucket_at(rule::EXPORT, t0 + Duration::days(7), &rec);
    put(
        &w,
        "LeadsTable",
        raw(
            &rec,
            &[("tenant_id", w.tenant.as_str()), ("exp_bucket", &bucket)],
        ),
    )
    .await;
    let exports = w.template.bucket_name("ExportsBucket").unwrap().to_string();
    let object = keys::export_object(&w.tenant, &export, "csv");
    w.clients
        .s3
        .put_object()
        .bucket(&exports)
        .key(&object)
        .body(b"email\nana@example.com\n".to_vec().into())
        .send()
        .await
        .unwrap();
    // A data-subject request record, 24 months after it closed (written by the dsar function).
    let dsar = Key {
        pk: format!("TENANT#{}#DSAR", w.tenant),
        sk: "REQ#r1".into(),
    };
    let dsar_bucket = retention::expiry_bucket_for(
        rule::DSAR_RECORD,
        time::macros::date!(2026 - 03 - 09),
        &dsar,
    );
    put(
        &w,
        "PrivacyTable",
        raw(&dsar, &[("exp_bucket", &dsar_bucket)]),
    )
    .await;

    run_at(&w, &app, datetime!(2026-03-08 03:00 UTC)).await;
    assert!(get(&w, "LeadsTable", &rec).await.is_some());
    assert!(w
        .clients
        .s3
        .head_object()
        .bucket(&exports)
        .key(&object)
        .send()
        .await
        .is_ok());
    assert!(get(&w, "PrivacyTable", &dsar).await.is_some());
    let r = run_at(&w, &app, datetime!(2026-03-09 03:00 UTC)).await;
    assert_eq!(deleted(&r, rule::EXPORT), 1);
    assert_eq!(deleted(&r, rule::DSAR_RECORD), 1);
    assert!(get(&w, "LeadsTable", &rec).await.is_none());
    assert!(get(&w, "PrivacyTable", &dsar).await.is_none());
    assert!(w
        .clients
        .s3
        .head_object()
        .bucket(&exports)
        .key(&object)
        .send()
        .await
        .is_err());
}

// ---------------------------------------------------------------- closed tenants

struct Workspace {
    tenant: TenantId,
    form: shared_core::domain::FormRecord,
    lead: LeadId,
    user_key: Key,
    login_key: Key,
    session_key: Key,
    note_key: Key,
    attachment_object: String,
    export_object: String,
    import_object: String,
}

/// A tenant with leads (via lead intake), notes, an attachment, a user with a login item and a
/// session, a pipeline, a suppression entry, an export and an upload, billing and a security
/// event.
async fn workspace(w: &World, name: &str, email: &str) -> Workspace {
    let t = TenantId::parse(name).unwrap();
    let form = infra::seed::demo_form(
        &t,
        &FormId::parse(&format!("{name}-form")).unwrap(),
        WEB_ORIGIN,
    );
    w.put_tenant(&t, TenantStatus::Active, &form).await.unwrap();
    let (lead, _) = submit(w, &form.form_id, email).await;
    submit(w, &form.form_id, &format!("second.{email}")).await;
    let note_key = keys::lead_note(&t, &lead, "n1");
    put(
        w,
        "LeadsTable",
        raw(&note_key, &[("text", "Called Ana Secret")]),
    )
    .await;
    let att = shared_leads::transfers::AttachmentId::parse("a1").unwrap();
    put(
        w,
        "LeadsTable",
        raw(
            &keys::attachment(&t, &lead, &att),
            &[("filename", "cv.pdf")],
        ),
    )
    .await;
    let attachments = w
        .template
        .bucket_name("AttachmentsBucket")
        .unwrap()
        .to_string();
    let exports = w.template.bucket_name("ExportsBucket").unwrap().to_string();
    let attachment_object = keys::attachment_object(&t, &lead, &att);
    let export = shared_leads::transfers::ExportId::parse("ex1").unwrap();
    let export_object = keys::export_object(&t, &export, "csv");
    let import_object = keys::import_upload_object(
        &t,
        &shared_leads::transfers::ImportId::parse("im1").unwrap(),
    );
    for (bucket, key) in [
        (&attachments, &attachment_object),
        (&exports, &export_object),
        (&exports, &import_object),
    ] {
        w.clients
            .s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(b"Ana Secret".to_vec().into())
            .send()
            .await
            .unwrap();
    }
    put(
        w,
        "LeadsTable",
        raw(&keys::export_record(&t, &export), &[("tenant_id", name)]),
    )
    .await;
    let user = UserId::parse(&format!("{name}-owner")).unwrap();
    let user_key = keys::user(&t, &user);
    put(
        w,
        "TenantsTable",
        raw(
            &user_key,
            &[
                ("email", email),
                ("user_id", user.as_str()),
                ("name", "Ana Secret"),
            ],
        ),
    )
    .await;
    let bidx = w.key.email(&Email::parse(email).unwrap());
    let login_key = keys::login(&bidx);
    put(
        w,
        "TenantsTable",
        shared_accounts::dynamo::login_item(&bidx, &t, &user),
    )
    .await;
    let se = session(
        &t,
        user.as_str(),
        &format!("{name}-s1"),
        datetime!(2027-01-01 00:00 UTC),
    );
    let session_key = keys::session(&se.session_id);
    put(
        w,
        "TenantsTable",
        shared_accounts::dynamo::session_item(&se),
    )
    .await;
    put(
        w,
        "TenantsTable",
        raw(&keys::pipeline(&t), &[("stages", "new")]),
    )
    .await;
    put(
        w,
        "PrivacyTable",
        raw(&keys::suppression(&t, "bidx-of-someone"), &[]),
    )
    .await;
    put(
        w,
        "BillingTable",
        billing_item(&t, "INVOICE#in_1", time::macros::date!(2032 - 07 - 01)),
    )
    .await;
    put(
        w,
        "SecurityLogTable",
        account_store(w).event_item(&security_event(&t, datetime!(2026-03-01 00:00 UTC)), "ev1"),
    )
    .await;
    Workspace {
        tenant: t,
        form,
        lead,
        user_key,
        login_key,
        session_key,
        note_key,
        attachment_object,
        export_object,
        import_object,
    }
}

/// Closes the tenant as the auth function does (`DELETE /v1/tenant`).
async fn close(w: &World, t: &TenantId, at: OffsetDateTime, grace_days: i64) {
    let erase_after = at + Duration::days(grace_days);
    let k = keys::tenant(t);
    w.clients
        .dynamo
        .update_item()
        .table_name(w.table("TenantsTable"))
        .set_key(Some(key_av(&k)))
        .update_expression("SET #st = :c, closed_at = :at, erase_after = :e, exp_bucket = :b")
        .expression_attribute_names("#st", "status")
        .expression_attribute_values(":c", AttributeValue::S("closed".into()))
        .expression_attribute_values(":at", AttributeValue::S(rfc3339(at)))
        .expression_attribute_values(":e", AttributeValue::S(rfc3339(erase_after)))
        .expression_attribute_values(
            ":b",
            AttributeValue::S(retention::expiry_bucket_at(
                rule::TENANT_ERASE,
                erase_after,
                &k,
            )),
        )
        .send()
        .await
        .unwrap();
}

async fn object_exists(w: &World, bucket: &str, key: &str) -> bool {
    let bucket = w.template.bucket_name(bucket).unwrap().to_string();
    w.clients
        .s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .is_ok()
}

/// Every item of `table` whose key mentions `tenant`.
async fn items_of(w: &World, table: &str, tenant: &str) -> Vec<Item> {
    w.scan(table)
        .await
        .into_iter()
        .filter(|it| {
            ["pk", "sk", "tenant_id", "gsi1pk"]
                .iter()
                .any(|a| s(it, a).is_some_and(|v| v.contains(tenant)))
        })
        .collect()
}

#[tokio::test]
async fn a_closed_tenant_is_erased_after_its_grace_and_no_one_else() {
    let w = world().await;
    let app = app(&w);
    let t0 = datetime!(2026-03-01 12:00 UTC);
    w.clock.set(t0);
    let gone = workspace(&w, "closed-co", "ana.secret@example.com").await;
    let other = workspace(&w, "other-co", "bob.secret@example.com").await;
    close(&w, &gone.tenant, t0, 30).await;
    let before_other: Vec<usize> = {
        let mut v = Vec::new();
        for table in ["TenantsTable", "LeadsTable", "PrivacyTable", "BillingTable"] {
            v.push(items_of(&w, table, "other-co").await.len());
        }
        v
    };

    // Within the grace (erase_after 2026-03-31 12:00): untouched.
    let r = run_at(&w, &app, datetime!(2026-03-31 03:00 UTC)).await;
    assert_eq!(deleted(&r, rule::TENANT_ERASE), 0);
    assert!(get(&w, "LeadsTable", &keys::lead(&gone.tenant, &gone.lead))
        .await
        .is_some());
    assert!(get(&w, "TenantsTable", &gone.user_key).await.is_some());
    assert!(object_exists(&w, "AttachmentsBucket", &gone.attachment_object).await);

    // The day after the grace: the workspace is gone, with its objects; billing and the security
    // log stay until their own end. Nothing of the other tenant is touched.
    let (logs, guard) = capture_logs();
    let r = run_at(&w, &app, datetime!(2026-04-01 03:00 UTC)).await;
    drop(guard);
    assert_eq!(deleted(&r, rule::TENANT_ERASE), 1, "{r:#}");
    assert!(
        r["rules"][rule::TENANT_ERASE]["workspace_items"]
            .as_u64()
            .unwrap()
            >= 12
    );
    assert_eq!(r["rules"][rule::TENANT_ERASE]["objects"], 3);
    for table in ["TenantsTable", "LeadsTable", "PrivacyTable"] {
        assert_eq!(items_of(&w, table, "closed-co").await, vec![], "{table}");
    }
    assert!(get(&w, "TenantsTable", &gone.login_key).await.is_none());
    assert!(get(&w, "TenantsTable", &gone.session_key).await.is_none());
    assert!(get(&w, "LeadsTable", &gone.note_key).await.is_none());
    assert!(get(&w, "TenantsTable", &keys::form(&gone.form.form_id))
        .await
        .is_none());
    for (bucket, key) in [
        ("AttachmentsBucket", &gone.attachment_object),
        ("ExportsBucket", &gone.export_object),
        ("ExportsBucket", &gone.import_object),
    ] {
        assert!(!object_exists(&w, bucket, key).await, "{key}");
    }
    assert_eq!(
        items_of(&w, "BillingTable", "closed-co").await.len(),
        1,
        "billing kept"
    );
    assert_eq!(items_of(&w, "SecurityLogTable", "closed-co").await.len(), 1);

    let mut after_other = Vec::new();
    for table in ["TenantsTable", "LeadsTable", "PrivacyTable", "BillingTable"] {
        after_other.push(items_of(&w, table, "other-co").await.len());
    }
    assert_eq!(after_other, before_other, "the other tenant is untouched");
    assert!(get(&w, "TenantsTable", &other.login_key).await.is_some());
    assert!(get(&w, "TenantsTable", &other.session_key).await.is_some());
    assert!(object_exists(&w, "AttachmentsBucket", &other.attachment_object).await);
    assert!(object_exists(&w, "ExportsBucket", &other.export_object).await);

    // The run's logs (and its report) name no person: ids, counts and rule names only.
    let text = assert_logs_hold_without(
        &logs,
        &["retention run report", "tenant-erase"],
        &["ana.secret", "bob.secret", "Ana Secret"],
    );
    let stored = w.items_with_sk_prefix("OpsTable", "REPORT#").await;
    let stored: Vec<&str> = stored.iter().filter_map(|it| s(it, "report")).collect();
    for needle in [
        "ana.secret",
        "bob.secret",
        "Ana Secret",
        "example.com",
        "203.0.113",
        "198.51.100",
        "SecretBrowser",
        "DemoBrowser",
        "cv.pdf",
        "Hello",
    ] {
        assert!(!text.contains(needle), "log holds {needle}: {text}");
        for r in &stored {
            assert!(!r.contains(needle), "report holds {needle}");
        }
    }
}

#[tokio::test]
async fn holds_keep_a_tenant_or_a_lead_and_a_reactivated_tenant_is_left_alone() {
    let w = world().await;
    let app = app(&w);
    let t0 = datetime!(2026-03-01 12:00 UTC);
    w.clock.set(t0);
    let held = workspace(&w, "held-co", "held@example.com").await;
    let partly = workspace(&w, "partly-co", "partly@example.com").await;
    let back = workspace(&w, "back-co", "back@example.com").await;
    for t in [&held.tenant, &partly.tenant, &back.tenant] {
        close(&w, t, t0, 30).await;
    }
    set_attr(
        &w,
        "TenantsTable",
        &keys::tenant(&held.tenant),
        "legal_hold",
        AttributeValue::Bool(true),
    )
    .await;
    set_attr(
        &w,
        "LeadsTable",
        &keys::lead(&partly.tenant, &partly.lead),
        "legal_hold",
        AttributeValue::Bool(true),
    )
    .await;
    // Reactivated, and its expiry bucket left behind (auth removes it; a stale one must not
    // erase an active tenant).
    w.clients
        .dynamo
        .update_item()
        .table_name(w.table("TenantsTable"))
        .set_key(Some(key_av(&keys::tenant(&back.tenant))))
        .update_expression("SET #st = :a REMOVE closed_at, erase_after")
        .expression_attribute_names("#st", "status")
        .expression_attribute_values(":a", AttributeValue::S("active".into()))
        .send()
        .await
        .unwrap();
    let before_held = items_of(&w, "LeadsTable", "held-co").await.len();

    let r = run_at(&w, &app, datetime!(2026-04-01 03:00 UTC)).await;
    // Held tenant: everything kept, reported.
    assert_eq!(
        items_of(&w, "LeadsTable", "held-co").await.len(),
        before_held
    );
    assert!(get(&w, "TenantsTable", &held.user_key).await.is_some());
    assert!(object_exists(&w, "AttachmentsBucket", &held.attachment_object).await);
    let held_items = r["held_items"].as_array().unwrap();
    assert!(
        held_items.contains(&json!({"rule": "tenant-erase", "kind": "tenant", "id": "held-co"}))
    );
    // Held lead: that lead's partition and objects stay, everything else of the tenant goes; the
    // tenant record stays so the hold is reported again tomorrow.
    assert!(held_items.contains(&json!({
        "rule": "tenant-erase", "kind": "lead", "id": format!("partly-co/{}", partly.lead)
    })));
    assert!(
        get(&w, "LeadsTable", &keys::lead(&partly.tenant, &partly.lead))
            .await
            .is_some()
    );
    assert!(get(&w, "LeadsTable", &partly.note_key).await.is_some());
    assert!(object_exists(&w, "AttachmentsBucket", &partly.attachment_object).await);
    let partly_leads: Vec<Item> = items_of(&w, "LeadsTable", "partly-co")
        .await
        .into_iter()
        .filter(|it| s(it, "sk") == Some("LEAD"))
        .collect();
    assert_eq!(partly_leads.len(), 1, "the other lead is erased");
    assert!(get(&w, "TenantsTable", &partly.user_key).await.is_none());
    assert!(get(&w, "TenantsTable", &keys::tenant(&partly.tenant))
        .await
        .is_some());
    // Reactivated: untouched.
    assert!(get(&w, "TenantsTable", &back.user_key).await.is_some());
    assert!(get(&w, "LeadsTable", &keys::lead(&back.tenant, &back.lead))
        .await
        .is_some());
    assert_eq!(deleted(&r, rule::TENANT_ERASE), 0, "{r:#}");

    // The next day both holds are reported again; lifting the lead's hold finishes the erasure.
    let r = run_at(&w, &app, datetime!(2026-04-02 03:00 UTC)).await;
    assert_eq!(r["rules"][rule::TENANT_ERASE]["held"], 2, "{r:#}");
    set_attr(
        &w,
        "LeadsTable",
        &keys::lead(&partly.tenant, &partly.lead),
        "legal_hold",
        AttributeValue::Bool(false),
    )
    .await;
    let r = run_at(&w, &app, datetime!(2026-04-03 03:00 UTC)).await;
    assert_eq!(deleted(&r, rule::TENANT_ERASE), 1);
    assert_eq!(items_of(&w, "LeadsTable", "partly-co").await, vec![]);
    assert!(get(&w, "TenantsTable", &keys::tenant(&partly.tenant))
        .await
        .is_none());
    assert!(!object_exists(&w, "AttachmentsBucket", &partly.attachment_object).await);
    assert!(get(&w, "TenantsTable", &keys::tenant(&held.tenant))
        .await
        .is_some());
}

// ---------------------------------------------------------------- run mechanics

async fn expired_sessions(w: &World, n: usize, absolute: OffsetDateTime) -> Vec<Key> {
    let mut out = Vec::new();
    for i in 0..n {
        let se = session(
            &w.tenant,
            "u1",
            &format!("x{i}-{}", absolute.day()),
            absolute,
        );
        out.push(keys::session(&se.session_id));
        put(
            w,
            "TenantsTable",
            shared_accounts::dynamo::session_item(&se),
        )
        .await;
    }
    out
}

async fn count_present(w: &World, keys: &[Key]) -> usize {
    let mut n = 0;
    for k in keys {
        if get(w, "TenantsTable", k).await.is_some() {
            n += 1;
        }
    }
    n
}

#[tokio::test]
async fn an_interrupted_run_resumes_from_its_checkpoint() {
    let w = world().await;
    let app = app(&w);
    let mut all = Vec::new();
    for day in 1..=3 {
        let end = datetime!(2026-05-01 10:00 UTC) + Duration::days(day);
        all.extend(expired_sessions(&w, 20, end).await);
    }
    let at = datetime!(2026-05-05 03:00 UTC);
    w.clock.set(at);
    let limits = Limits {
        deadline: None,
        max_pages: Some(40),
    };
    let first = retention_cleanup::handle(&app, &event(at, false), limits).await;
    assert_eq!(first["status"], "partial", "{first:#}");
    let checkpoint = first["checkpoint"].as_str().unwrap().to_string();
    let done_first = deleted(&first, rule::SESSION);
    assert!(done_first > 0 && done_first < 60, "{first:#}");
    assert_eq!(count_present(&w, &all).await as u64, 60 - done_first);

    w.clock.set(at + Duration::minutes(20));
    let second = retention_cleanup::handle(&app, &event(at, false), Limits::default()).await;
    assert_eq!(second["status"], "completed");
    assert_eq!(second["resumed_from"], checkpoint.as_str());
    assert_eq!(done_first + deleted(&second, rule::SESSION), 60);
    assert_eq!(count_present(&w, &all).await, 0);
    // It did not start over: both runs together queried each bucket about once.
    // Per day: every rule's shards (tech-data has its own count).
    let rules_with_expiry_shards = rule::ALL.len() as u32 - 1;
    let units =
        3 * (rules_with_expiry_shards * keys::EXPIRY_SHARDS + keys::TECH_EXPIRY_SHARDS) as u64;
    let queries = first["queries"].as_u64().unwrap() + second["queries"].as_u64().unwrap();
    assert!(
        queries <= units + 1,
        "{queries} queries for {units} buckets"
    );
}

#[tokio::test]
async fn a_dry_run_reports_and_deletes_nothing() {
    let w = world().await;
    let app = app(&w);
    let sessions = expired_sessions(&w, 7, datetime!(2026-05-02 10:00 UTC)).await;
    let t0 = datetime!(2026-03-01 12:00 UTC);
    w.clock.set(t0);
    let ws = workspace(&w, "dry-co", "dry@example.com").await;
    close(&w, &ws.tenant, t0, 30).await;
    let at = datetime!(2026-05-05 03:00 UTC);
    w.clock.set(at);
    let before: Vec<usize> = {
        let mut v = Vec::new();
        for t in ["TenantsTable", "LeadsTable", "PrivacyTable"] {
            v.push(w.scan(t).await.len());
        }
        v
    };
    // catch-up from the clock's day: the closure's day is inside the window
    let mut app_wide = app;
    app_wide.settings.catch_up_days = 40;
    let r = retention_cleanup::handle(&app_wide, &event(at, true), Limits::default()).await;
    assert_eq!(r["dry_run"], true);
    assert_eq!(r["status"], "completed");
    assert_eq!(deleted(&r, rule::SESSION), 7);
    assert_eq!(deleted(&r, rule::TENANT_ERASE), 1);
    assert!(
        r["rules"][rule::TENANT_ERASE]["workspace_items"]
            .as_u64()
            .unwrap()
            >= 12
    );
    assert_eq!(r["rules"][rule::TENANT_ERASE]["objects"], 3);
    let mut after = Vec::new();
    for t in ["TenantsTable", "LeadsTable", "PrivacyTable"] {
        after.push(w.scan(t).await.len());
    }
    assert_eq!(after, before, "nothing deleted");
    assert_eq!(count_present(&w, &sessions).await, 7);
    assert!(object_exists(&w, "AttachmentsBucket", &ws.attachment_object).await);
    // No checkpoint moved: the real run finds the same.
    let r = retention_cleanup::handle(&app_wide, &event(at, false), Limits::default()).await;
    assert_eq!(deleted(&r, rule::SESSION), 7);
    assert_eq!(deleted(&r, rule::TENANT_ERASE), 1);
    assert_eq!(count_present(&w, &sessions).await, 0);
}

#[tokio::test]
async fn two_runs_at_once_delete_each_item_once() {
    let w = world().await;
    let app = app(&w);
    let sessions = expired_sessions(&w, 30, datetime!(2026-05-03 10:00 UTC)).await;
    let at = datetime!(2026-05-05 03:00 UTC);
    w.clock.set(at);
    let e = event(at, false);
    let (a, b) = tokio::join!(
        retention_cleanup::handle(&app, &e, Limits::default()),
        retention_cleanup::handle(&app, &e, Limits::default())
    );
    let mut counts = [deleted(&a, rule::SESSION), deleted(&b, rule::SESSION)];
    counts.sort();
    assert_eq!(counts, [0, 30], "{a:#}\n{b:#}");
    let statuses = [a["status"].as_str().unwrap(), b["status"].as_str().unwrap()];
    assert!(statuses.contains(&"busy"), "{statuses:?}");
    assert_eq!(count_present(&w, &sessions).await, 0);
    // The lease was released: the next run runs (and finds nothing left).
    w.clock.set(at + Duration::hours(24));
    let r = retention_cleanup::handle(
        &app,
        &event(at + Duration::hours(24), false),
        Limits::default(),
    )
    .await;
    assert_eq!(r["status"], "completed");
    // Its state and reports are declared in the data inventory.
    for it in w.scan("OpsTable").await {
        let sk = s(&it, "sk").unwrap().to_string();
        for name in it.keys() {
            assert!(
                inventory::declaration(Table::Ops, &sk, name).is_some(),
                "ops {sk} {name} undeclared"
            );
        }
    }
}

#[tokio::test]
async fn events_far_from_the_clock_or_malformed_are_refused() {
    let w = world().await;
    let mut app = app(&w);
    app.settings.allow_event_time_skew = false;
    let sessions = expired_sessions(&w, 3, datetime!(2026-05-03 10:00 UTC)).await;
    let now = datetime!(2026-05-05 03:00 UTC);
    w.clock.set(now);
    let r = retention_cleanup::handle(
        &app,
        &event(now + Duration::days(30), false),
        Limits::default(),
    )
    .await;
    assert_eq!(r["status"], "refused");
    assert_eq!(r["error"]["code"], "event_time_skew");
    for bad in [json!({}), json!({"time": "soon"}), json!([1, 2])] {
        let r = retention_cleanup::handle(&app, &bad, Limits::default()).await;
        assert_eq!(r["error"]["code"], "invalid_event");
    }
    assert_eq!(count_present(&w, &sessions).await, 3, "nothing deleted");
    // Within the hour: runs.
    let r = retention_cleanup::handle(
        &app,
        &event(now + Duration::minutes(50), false),
        Limits::default(),
    )
    .await;
    assert_eq!(r["status"], "completed");
    assert_eq!(count_present(&w, &sessions).await, 0);
}

#[tokio::test]
async fn every_attribute_the_writers_add_is_declared() {
    let w = world().await;
    let store = account_store(&w);
    let s1 = session(&w.tenant, "u1", "s1", datetime!(2026-05-03 10:00 UTC));
    let ev = store.event_item(
        &security_event(&w.tenant, datetime!(2026-05-03 10:00 UTC)),
        "e1",
    );
    for (table, it) in [
        (Table::Tenants, shared_accounts::dynamo::session_item(&s1)),
        (Table::SecurityLog, ev),
    ] {
        let sk = s(&it, "sk").unwrap().to_string();
        assert!(s(&it, "exp_bucket").is_some());
        for name in it.keys() {
            assert!(
                inventory::declaration(table, &sk, name).is_some(),
                "{sk} {name}"
            );
        }
    }
}

// ---------------------------------------------------------------- end to end with auth

#[tokio::test]
async fn closing_through_auth_schedules_the_erasure_and_reactivating_cancels_it() {
    use shared_accounts::auth::permissions::Role;
    use shared_accounts::{Mfa, Tenant, User};
    const PASSWORD: &str = "Quartz-Meadow-Lantern-77";
    let w = world().await;
    let t0 = datetime!(2026-03-01 12:00 UTC);
    w.clock.set(t0);
    let auth_app = w.auth_app().await.unwrap();
    let tenant = TenantId::parse("closing-co").unwrap();
    let user = User {
        user_id: UserId::parse("us-closer").unwrap(),
        tenant_id: tenant.clone(),
        email: Email::parse("closer.secret@example.com").unwrap(),
        name: "Closer Secret".into(),
        phone: None,
        role: Role::Owner,
        password_hash: shared_accounts::auth::password::hash_password(PASSWORD).unwrap(),
        email_verified: true,
        created_at: t0,
        mfa: Mfa::default(),
        last_login: None,
        policy: None,
    };
    let record = Tenant {
        tenant_id: tenant.clone(),
        business_name: "Closing Co".into(),
        status: TenantStatus::Active,
        owner_user_id: user.user_id.clone(),
        created_at: t0,
        closed_at: None,
        erase_after: None,
    };
    put(
        &w,
        "TenantsTable",
        shared_accounts::dynamo::tenant_item(&record),
    )
    .await;
    put(
        &w,
        "TenantsTable",
        shared_accounts::dynamo::user_item(&user),
    )
    .await;
    let bidx = w.key.email(&user.email);
    put(
        &w,
        "TenantsTable",
        shared_accounts::dynamo::login_item(&bidx, &tenant, &user.user_id),
    )
    .await;
    let body = json!({"email": user.email.as_str(), "password": PASSWORD});
    let login = auth::handle(
        &auth_app,
        api_event("POST", "/v1/auth/login", Some(&body), None),
    )
    .await;
    let access = response_json(&login)["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let close = |access: String| {
        let app = &auth_app;
        async move {
            let body = json!({"password": PASSWORD});
            auth::handle(
                app,
                api_event("DELETE", "/v1/tenant", Some(&body), Some(&access)),
            )
            .await
            .status()
        }
    };
    assert_eq!(close(access.clone()).await, 200);
    let tenant_key = keys::tenant(&tenant);
    let it = get(&w, "TenantsTable", &tenant_key).await.unwrap();
    // erase_after 2026-03-31 12:00: erased by the run of 1 April.
    assert!(
        s(&it, "exp_bucket")
            .unwrap()
            .starts_with("EXP#tenant-erase#2026-04-01#"),
        "{it:?}"
    );
    let r = auth::handle(
        &auth_app,
        api_event("POST", "/v1/tenant/reactivate", None, Some(&access)),
    )
    .await;
    assert_eq!(r.status(), 200);
    let it = get(&w, "TenantsTable", &tenant_key).await.unwrap();
    assert!(
        s(&it, "exp_bucket").is_none(),
        "reactivation cancels the erasure"
    );
    assert_eq!(close(access).await, 200);

    let mut app = app(&w);
    app.settings.catch_up_days = 31;
    let r = run_at(&w, &app, datetime!(2026-03-31 03:00 UTC)).await;
    assert_eq!(deleted(&r, rule::TENANT_ERASE), 0);
    assert!(get(&w, "TenantsTable", &tenant_key).await.is_some());
    let r = run_at(&w, &app, datetime!(2026-04-01 03:00 UTC)).await;
    assert_eq!(deleted(&r, rule::TENANT_ERASE), 1, "{r:#}");
    for k in [
        &tenant_key,
        &keys::user(&tenant, &user.user_id),
        &keys::login(&bidx),
    ] {
        assert!(get(&w, "TenantsTable", k).await.is_none(), "{k:?}");
    }
    assert_eq!(
        items_of(&w, "TenantsTable", "closing-co").await,
        vec![],
        "sessions too"
    );
    // The security events of the closure stay for their own 180 days.
    assert!(!items_of(&w, "SecurityLogTable", "closing-co")
        .await
        .is_empty());
}

/// The IP address and user agent of a user's last login are technical data: removed 90 days
/// after the login (the user and the login's time stay); a later login keeps its own 90 days.
#[tokio::test]
async fn a_logins_ip_and_user_agent_leave_90_days_later_and_a_later_login_keeps_its_own() {
    use shared_accounts::auth::permissions::Role;
    use shared_accounts::{Mfa, Tenant, User};
    const PASSWORD: &str = "Quartz-Meadow-Lantern-77";
    /// `rule::LOGIN_META`, as the report names it.
    const LOGIN_META: &str = "login-meta";
    let w = world().await;
    let t0 = datetime!(2026-03-01 12:00 UTC);
    w.clock.set(t0);
    let auth_app = w.auth_app().await.unwrap();
    let tenant = TenantId::parse("login-meta-co").unwrap();
    let mut users = Vec::new();
    for (id, email) in [
        ("us-ana", "ana.login@example.com"),
        ("us-bob", "bob.login@example.com"),
    ] {
        let user = User {
            user_id: UserId::parse(id).unwrap(),
            tenant_id: tenant.clone(),
            email: Email::parse(email).unwrap(),
            name: "Login Meta".into(),
            phone: None,
            role: if id == "us-ana" {
                Role::Owner
            } else {
                Role::Admin
            },
            password_hash: shared_accounts::auth::password::hash_password(PASSWORD).unwrap(),
            email_verified: true,
            created_at: t0,
            mfa: Mfa::default(),
            last_login: None,
            policy: None,
        };
        put(
            &w,
            "TenantsTable",
            shared_accounts::dynamo::user_item(&user),
        )
        .await;
        let bidx = w.key.email(&user.email);
        put(
            &w,
            "TenantsTable",
            shared_accounts::dynamo::login_item(&bidx, &tenant, &user.user_id),
        )
        .await;
        users.push(user);
    }
    put(
        &w,
        "TenantsTable",
        shared_accounts::dynamo::tenant_item(&Tenant {
            tenant_id: tenant.clone(),
            business_name: "Login Meta Co".into(),
            status: TenantStatus::Active,
            owner_user_id: users[0].user_id.clone(),
            created_at: t0,
            closed_at: None,
            erase_after: None,
        }),
    )
    .await;
    let login = |email: String| {
        let app = &auth_app;
        async move {
            let body = json!({"email": email, "password": PASSWORD});
            let r = auth::handle(app, api_event("POST", "/v1/auth/login", Some(&body), None)).await;
            assert_eq!(r.status(), 200, "{}", response_json(&r));
        }
    };
    for u in &users {
        login(u.email.as_str().to_string()).await;
    }
    // Bob logs in again 60 days later: his IP and user agent are kept 90 days from then.
    w.clock.set(datetime!(2026-04-30 12:00 UTC));
    login(users[1].email.as_str().to_string()).await;
    let ana = keys::user(&tenant, &users[0].user_id);
    let bob = keys::user(&tenant, &users[1].user_id);
    for k in [&ana, &bob] {
        let it = get(&w, "TenantsTable", k).await.unwrap();
        assert_eq!(s(&it, "last_login_ip"), Some("203.0.113.20"), "{it:?}");
        assert!(s(&it, "last_login_ua").is_some());
        for name in it.keys() {
            assert!(
                inventory::declaration(Table::Tenants, "USER#", name).is_some(),
                "{name}"
            );
        }
    }

    let mut app = app(&w);
    app.settings.catch_up_days = 100;
    // Ana's login of 1 March 12:00 is kept through 30 May 12:00: still there on that day's run.
    let r = run_at(&w, &app, datetime!(2026-05-30 03:00 UTC)).await;
    assert_eq!(deleted(&r, LOGIN_META), 0, "{r:#}");
    assert!(s(
        &get(&w, "TenantsTable", &ana).await.unwrap(),
        "last_login_ip"
    )
    .is_some());
    let r = run_at(&w, &app, datetime!(2026-05-31 03:00 UTC)).await;
    assert_eq!(deleted(&r, LOGIN_META), 1, "{r:#}");
    let it = get(&w, "TenantsTable", &ana).await.expect("the user stays");
    assert!(!it.contains_key("last_login_ip") && !it.contains_key("last_login_ua"));
    assert!(!it.contains_key("exp_bucket"), "out of the index");
    assert!(it.contains_key("last_login_at") && it.contains_key("email"));
    let it = get(&w, "TenantsTable", &bob).await.unwrap();
    assert!(
        s(&it, "last_login_ip").is_some(),
        "a later login keeps its own days"
    );
    // Bob's of 30 April goes with the run of 30 July.
    let r = run_at(&w, &app, datetime!(2026-07-30 03:00 UTC)).await;
    assert_eq!(deleted(&r, LOGIN_META), 1, "{r:#}");
    let it = get(&w, "TenantsTable", &bob).await.unwrap();
    assert!(!it.contains_key("last_login_ip") && !it.contains_key("last_login_ua"));
    assert!(get(&w, "TenantsTable", &keys::tenant(&tenant))
        .await
        .is_some());
}

/// A workspace erased after its grace ends its billing relationship too: the subscription
/// state goes, the provider customer's link is closed (restricted, kept only to its legal end,
/// to file a late refund or final invoice), the invoices stay restricted until their own end.
/// Another tenant's billing and a link naming another tenant are untouched.
#[tokio::test]
async fn an_erased_workspace_closes_its_subscription_and_customer_link_and_keeps_its_invoices() {
    let w = world().await;
    let app = app(&w);
    let t0 = datetime!(2026-03-01 12:00 UTC);
    w.clock.set(t0);
    let gone = workspace(&w, "billed-co", "payer.secret@example.com").await;
    let other = workspace(&w, "still-co", "still.secret@example.com").await;
    let sub = |t: &TenantId, cus: &str| {
        let k = keys::subscription_state(t);
        raw(
            &k,
            &[
                ("tenant_id", t.as_str()),
                ("provider", "stripe"),
                ("customer_id", cus),
                ("subscription_id", "sub_1"),
                ("status", "canceled"),
            ],
        )
    };
    let link = |t: &TenantId, cus: &str| {
        let k = keys::billing_customer(
            "stripe",
            &shared_billing::model::ProviderId::parse(cus).unwrap(),
        );
        raw(
            &k,
            &[
                ("tenant_id", t.as_str()),
                ("provider", "stripe"),
                ("customer_id", cus),
                ("linked_at", "2026-01-01T00:00:00Z"),
            ],
        )
    };
    for (t, cus) in [(&gone.tenant, "cus_gone"), (&other.tenant, "cus_other")] {
        put(&w, "BillingTable", sub(t, cus)).await;
        put(&w, "BillingTable", link(t, cus)).await;
        put(
            &w,
            "BillingTable",
            billing_item(t, "INVOICE#in_9", time::macros::date!(2032 - 07 - 01)),
        )
        .await;
    }
    close(&w, &gone.tenant, t0, 30).await;
    let r = run_at(&w, &app, datetime!(2026-04-01 03:00 UTC)).await;
    assert_eq!(deleted(&r, rule::TENANT_ERASE), 1, "{r:#}");

    assert!(
        get(&w, "BillingTable", &keys::subscription_state(&gone.tenant))
            .await
            .is_none(),
        "the subscription state goes with the workspace"
    );
    let cus = shared_billing::model::ProviderId::parse("cus_gone").unwrap();
    let l = get(&w, "BillingTable", &keys::billing_customer("stripe", &cus))
        .await
        .expect("the link is kept, closed");
    assert!(s(&l, "tenant_erased_at").is_some(), "{l:?}");
    assert_eq!(l.get("restricted"), Some(&AttributeValue::Bool(true)));
    assert_eq!(s(&l, "retain_until"), Some("2032-07-01"));
    // In the billing rule's bucket of that day: removed then like the documents
    // (`billing_records_are_kept_until_their_legal_end_and_holds_are_reported`).
    assert!(s(&l, "exp_bucket")
        .unwrap()
        .starts_with("EXP#billing#2032-07-01#"));
    let inv = get(
        &w,
        "BillingTable",
        &Key {
            pk: keys::billing_partition(&gone.tenant),
            sk: "INVOICE#in_9".into(),
        },
    )
    .await
    .expect("the invoice stays");
    assert_eq!(inv.get("restricted"), Some(&AttributeValue::Bool(true)));
    for name in l.keys().chain(inv.keys()) {
        assert!(
            inventory::declaration(Table::Billing, "CUSTOMER", name).is_some()
                || inventory::declaration(Table::Billing, "INVOICE#in_9", name).is_some(),
            "{name}"
        );
    }

    // The other tenant's billing is untouched.
    let still = get(&w, "BillingTable", &keys::subscription_state(&other.tenant))
        .await
        .expect("another tenant's state");
    assert_eq!(s(&still, "status"), Some("canceled"));
    let cus = shared_billing::model::ProviderId::parse("cus_other").unwrap();
    let l = get(&w, "BillingTable", &keys::billing_customer("stripe", &cus))
        .await
        .unwrap();
    assert!(!l.contains_key("tenant_erased_at") && !l.contains_key("restricted"));
}

// ---------------------------------------------------------------- quarantined submissions

/// A quarantined post (a disposable address, no proof of work) to the demo form at `at`.
async fn quarantine_at(w: &World, at: OffsetDateTime, email: &str) {
    w.clock.set(at);
    let e = json_submission(&json!({"email": email, "name": "Bot", "message": "cheap pills"}));
    let resp = lead_intake::handle(&w.intake(None), request(&e)).await;
    assert_eq!(resp.status(), 201, "{:?}", response_json(&resp));
}

/// The posted emails of the quarantined submissions stored.
async fn quarantined_emails(w: &World) -> Vec<String> {
    let mut out: Vec<String> = w
        .items_with_sk_prefix("OpsTable", "Q#")
        .await
        .iter()
        .filter_map(|it| {
            it.get("fields")?
                .as_m()
                .ok()?
                .get("email")?
                .as_s()
                .ok()
                .cloned()
        })
        .collect();
    out.sort();
    out
}

/// The policy keeps a quarantined submission 30 days: the daily run removes it on the day after
/// (DynamoDB's TTL, which may lag two days, is only a backstop; the emulator's never runs), a
/// younger one stays, and a retried run deletes nothing twice.
#[tokio::test]
async fn quarantined_submissions_leave_after_30_days_and_younger_ones_stay() {
    let w = world().await;
    let app = app(&w);
    let at = datetime!(2026-06-10 03:00 UTC);
    quarantine_at(&w, at - Duration::days(31), "old.bot@mailinator.com").await;
    quarantine_at(&w, at - Duration::days(29), "young.bot@mailinator.com").await;
    assert_eq!(
        quarantined_emails(&w).await,
        ["old.bot@mailinator.com", "young.bot@mailinator.com"]
    );

    let report = run_at(&w, &app, at).await;
    assert_eq!(deleted(&report, rule::QUARANTINE), 1, "{report:#}");
    assert_eq!(quarantined_emails(&w).await, ["young.bot@mailinator.com"]);

    // Retried (the schedule's retry, or a second invocation): nothing more to delete.
    let again = run_at(&w, &app, at + Duration::minutes(5)).await;
    assert_eq!(deleted(&again, rule::QUARANTINE), 0, "{again:#}");
    assert_eq!(quarantined_emails(&w).await, ["young.bot@mailinator.com"]);

    // The younger one's 30 days end the next day: the run after removes it.
    let later = run_at(&w, &app, at + Duration::days(2)).await;
    assert_eq!(deleted(&later, rule::QUARANTINE), 1, "{later:#}");
    assert!(quarantined_emails(&w).await.is_empty());
}
