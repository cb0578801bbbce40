//! Lead intake against the emulated DynamoDB, through real API Gateway v2 events.

use std::collections::HashSet;

use integration_tests::*;
use serde_json::json;
use shared_core::clock::Clock;
use shared_core::domain::{Email, FormId, TenantId, TenantStatus};
use shared_leads::intake::IntakeSettings;
use shared_privacy::inventory::{self, Table};

async fn world() -> World {
    World::new().await.expect("test world")
}

#[tokio::test]
async fn json_submission_stores_lead_submission_consent_and_technical_data() {
    let w = world().await;
    let intake = w.intake(None);
    let resp =
        lead_intake::handle(&intake, request(&fixture("lead-intake/submit-json.json"))).await;
    assert_eq!(resp.status(), 201);
    let body = response_json(&resp);
    let lead_id = body["lead_id"].as_str().unwrap().to_string();
    let submission_id = body["submission_id"].as_str().unwrap().to_string();
    assert_eq!(
        header(&resp, "access-control-allow-origin"),
        Some(WEB_ORIGIN)
    );

    let leads = w.items_with_sk_prefix("LeadsTable", "LEAD").await;
    assert_eq!(leads.len(), 1);
    let lead = &leads[0];
    assert_eq!(s(lead, "lead_id"), Some(lead_id.as_str()));
    assert_eq!(s(lead, "email"), Some("ana.pop@example.com"));
    assert_eq!(s(lead, "name"), Some("Ana Pop"));
    let email = Email::parse("ana.pop@example.com").unwrap();
    assert_eq!(s(lead, "email_bidx"), Some(w.key.email(&email).as_str()));

    let subs = w.items_with_sk_prefix("LeadsTable", "SUB#").await;
    assert_eq!(subs.len(), 1);
    let sub = &subs[0];
    assert_eq!(s(sub, "submission_id"), Some(submission_id.as_str()));
    assert_eq!(s(sub, "ip"), Some("203.0.113.10"));
    assert_eq!(s(sub, "page_url"), Some("http://127.0.0.1:8080/"));
    assert!(s(sub, "user_agent").unwrap().contains("DemoBrowser"));
    assert!(s(sub, "tech_exp").unwrap().starts_with("TECHEXP#"));
    let consents = sub["consents"].as_l().unwrap();
    let c = consents[0].as_m().unwrap();
    assert_eq!(c["key"].as_s().unwrap(), "marketing");
    assert_eq!(
        c["version"].as_s().unwrap(),
        infra::seed::DEMO_CONSENT_VERSION
    );
    assert!(*c["granted"].as_bool().unwrap());
    let fields = sub["fields"].as_m().unwrap();
    assert_eq!(
        fields["message"].as_s().unwrap(),
        "Please call me about pricing."
    );
}

#[tokio::test]
async fn plain_html_form_post_redirects_303_and_stores() {
    let w = world().await;
    let intake = w.intake(None);
    let resp =
        lead_intake::handle(&intake, request(&fixture("lead-intake/submit-form.json"))).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(
        header(&resp, "location"),
        Some("http://127.0.0.1:8080/thanks.html")
    );
    let leads = w.items_with_sk_prefix("LeadsTable", "LEAD").await;
    assert_eq!(s(&leads[0], "email"), Some("ion.dobre@example.com"));
}

#[tokio::test]
async fn same_email_any_case_is_one_lead_with_many_submissions() {
    let w = world().await;
    let intake = w.intake(None);
    let mut ids = HashSet::new();
    for email in ["Ana@Example.com", "ana@example.com", " ANA@EXAMPLE.COM "] {
        let resp = lead_intake::handle(
            &intake,
            request(&json_submission(&json!({"email": email, "message": "hi"}))),
        )
        .await;
        assert_eq!(resp.status(), 201);
        ids.insert(
            response_json(&resp)["lead_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(ids.len(), 1);
    let leads = w.items_with_sk_prefix("LeadsTable", "LEAD").await;
    assert_eq!(leads.len(), 1);
    assert_eq!(leads[0]["submission_count"].as_n().unwrap(), "3");
    assert_eq!(w.items_with_sk_prefix("LeadsTable", "SUB#").await.len(), 3);
}

#[tokio::test]
async fn concurrent_first_submissions_of_one_person_make_one_lead() {
    let w = world().await;
    let intake = w.intake(None);
    let (logs, _capture) = capture_logs();
    let mut futures = Vec::new();
    for i in 0..6 {
        let mut e =
            json_submission(&json!({"email": "race@example.com", "message": format!("m{i}")}));
        e["requestContext"]["http"]["sourceIp"] = json!(format!("198.51.100.{i}"));
        futures.push(lead_intake::handle(&intake, request(&e)));
    }
    let responses = futures_join(futures).await;
    assert!(
        responses.iter().all(|r| r.status() == 201),
        "{:?}\n{}",
        responses.iter().map(|r| r.status()).collect::<Vec<_>>(),
        logs.text()
    );
    assert_eq!(w.items_with_sk_prefix("LeadsTable", "LEAD").await.len(), 1);
    assert_eq!(w.items_with_sk_prefix("LeadsTable", "SUB#").await.len(), 6);
}

async fn futures_join<F: std::future::Future>(fs: Vec<F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    let handles: Vec<_> = fs.into_iter().map(Box::pin).collect();
    // Poll them concurrently on this task.
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.extend(results.into_iter().map(|r| r.expect("completed")));
    out
}

#[tokio::test]
async fn invalid_fields_are_400_per_field_and_nothing_is_stored() {
    let w = world().await;
    let intake = w.intake(None);
    let resp = lead_intake::handle(
        &intake,
        request(&json_submission(
            &json!({"email": "nope", "phone": "12", "shoe_size": "44"}),
        )),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let b = response_json(&resp);
    assert_eq!(b["error"]["code"], "invalid_fields");
    for f in ["email", "phone", "shoe_size"] {
        assert!(b["error"]["fields"][f].is_string(), "{f} missing in {b}");
    }
    assert!(w.scan("LeadsTable").await.is_empty());
    assert!(
        w.scan("OpsTable").await.is_empty(),
        "not even a rate-limit count"
    );
}

#[tokio::test]
async fn oversized_unsupported_and_unknown_are_refused() {
    let w = world().await;
    let intake = w.intake(None);

    let big = "x".repeat(70 * 1024);
    let resp = lead_intake::handle(
        &intake,
        request(&json_submission(
            &json!({"email": "a@b.co", "message": big}),
        )),
    )
    .await;
    assert_eq!(resp.status(), 413);
    assert_eq!(response_json(&resp)["error"]["code"], "payload_too_large");

    let mut e = fixture("lead-intake/submit-json.json");
    e["headers"]["content-type"] = json!("text/plain");
    let resp = lead_intake::handle(&intake, request(&e)).await;
    assert_eq!(resp.status(), 415);

    let mut e = fixture("lead-intake/submit-json.json");
    e["rawPath"] = json!("/v1/forms/no-such-form/submissions");
    e["pathParameters"]["formId"] = json!("no-such-form");
    let resp = lead_intake::handle(&intake, request(&e)).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(response_json(&resp)["error"]["code"], "form_not_found");
    assert!(w.scan("LeadsTable").await.is_empty());
}

#[tokio::test]
async fn disabled_form_and_inactive_tenants_are_403_with_their_codes() {
    let w = world().await;
    let intake = w.intake(None);
    let submit = || request(&fixture("lead-intake/submit-json.json"));

    let mut form = w.form.clone();
    form.enabled = false;
    w.put_tenant(&w.tenant, TenantStatus::Active, &form)
        .await
        .unwrap();
    let resp = lead_intake::handle(&intake, submit()).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(response_json(&resp)["error"]["code"], "form_disabled");

    for status in [TenantStatus::Closed, TenantStatus::Suspended] {
        // Takes effect at once: the tenant is read with every submission, not cached.
        w.put_tenant(&w.tenant, status, &w.form).await.unwrap();
        let resp = lead_intake::handle(&intake, submit()).await;
        assert_eq!(resp.status(), 403);
        assert_eq!(response_json(&resp)["error"]["code"], "tenant_inactive");
    }
    assert!(w.scan("LeadsTable").await.is_empty());
}

#[tokio::test]
async fn cors_grants_only_the_forms_origins() {
    let w = world().await;
    let intake = w.intake(None);

    let resp = lead_intake::handle(&intake, request(&fixture("lead-intake/preflight.json"))).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(
        header(&resp, "access-control-allow-origin"),
        Some(WEB_ORIGIN)
    );
    assert!(header(&resp, "access-control-allow-methods")
        .unwrap()
        .contains("POST"));

    let mut e = fixture("lead-intake/preflight.json");
    e["headers"]["origin"] = json!("https://evil.example");
    let resp = lead_intake::handle(&intake, request(&e)).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(header(&resp, "access-control-allow-origin"), None);

    let mut e = fixture("lead-intake/submit-json.json");
    e["headers"]["origin"] = json!("https://evil.example");
    let resp = lead_intake::handle(&intake, request(&e)).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(response_json(&resp)["error"]["code"], "origin_not_allowed");
    assert_eq!(header(&resp, "access-control-allow-origin"), None);
    assert!(w.scan("LeadsTable").await.is_empty());
}

#[tokio::test]
async fn honeypot_and_suppressed_people_look_accepted_but_nothing_is_stored() {
    let w = world().await;
    let intake = w.intake(None);

    let resp = lead_intake::handle(
        &intake,
        request(&json_submission(
            &json!({"email": "bot@example.com", "_gotcha": "http://spam"}),
        )),
    )
    .await;
    assert_eq!(resp.status(), 201);

    // A person erased on request is on the tenant's suppression list (a keyed hash).
    let email = Email::parse("erased@example.com").unwrap();
    let bidx = w.key.email(&email);
    let k = shared_core::keys::suppression(&w.tenant, &bidx);
    w.clients
        .dynamo
        .put_item()
        .table_name(w.table("PrivacyTable"))
        .item("pk", aws_sdk_dynamodb::types::AttributeValue::S(k.pk))
        .item("sk", aws_sdk_dynamodb::types::AttributeValue::S(k.sk))
        .send()
        .await
        .unwrap();
    let resp = lead_intake::handle(
        &intake,
        request(&json_submission(&json!({"email": "Erased@example.com"}))),
    )
    .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(
        response_json(&resp)["lead_id"].as_str().unwrap(),
        w.key.lead_id(&w.tenant, &bidx).as_str(),
        "indistinguishable from a real answer"
    );
    assert!(w.scan("LeadsTable").await.is_empty());
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let w = world().await;
    let settings = IntakeSettings {
        rate_limit_per_ip_per_minute: 2,
        rate_limit_per_form_per_minute: 3,
        ..IntakeSettings::default()
    };
    let intake = w.intake(Some(settings));
    let from = |ip: &str, n: usize| {
        let mut e = json_submission(&json!({"email": format!("p{n}@example.com")}));
        e["requestContext"]["http"]["sourceIp"] = json!(ip);
        request(&e)
    };
    assert_eq!(
        lead_intake::handle(&intake, from("192.0.2.1", 1))
            .await
            .status(),
        201
    );
    assert_eq!(
        lead_intake::handle(&intake, from("192.0.2.1", 2))
            .await
            .status(),
        201
    );
    let resp = lead_intake::handle(&intake, from("192.0.2.1", 3)).await;
    assert_eq!(resp.status(), 429, "per IP");
    let retry: u64 = header(&resp, "retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(
        lead_intake::handle(&intake, from("192.0.2.2", 4))
            .await
            .status(),
        201
    );
    assert_eq!(
        lead_intake::handle(&intake, from("192.0.2.3", 5))
            .await
            .status(),
        429,
        "per form"
    );
    assert_eq!(w.items_with_sk_prefix("LeadsTable", "LEAD").await.len(), 3);

    // The next minute is a new window.
    w.clock.advance(time::Duration::seconds(60));
    assert_eq!(
        lead_intake::handle(&intake, from("192.0.2.1", 6))
            .await
            .status(),
        201
    );
    // No IP in clear in the rate-limit records.
    let ops = format!("{:?}", w.scan("OpsTable").await);
    assert!(!ops.contains("192.0.2.1"));
}

#[tokio::test]
async fn idempotency_key_replays_the_first_response_and_refuses_another_body() {
    let w = world().await;
    let intake = w.intake(None);
    let with_key = |body: serde_json::Value| {
        let mut e = json_submission(&body);
        e["headers"]["idempotency-key"] = json!("retry-123");
        request(&e)
    };
    let first = lead_intake::handle(&intake, with_key(json!({"email": "i@example.com"}))).await;
    let second = lead_intake::handle(&intake, with_key(json!({"email": "i@example.com"}))).await;
    assert_eq!(first.status(), 201);
    assert_eq!(second.status(), 201);
    assert_eq!(response_json(&first), response_json(&second));
    assert_eq!(header(&second, "idempotent-replayed"), Some("true"));
    assert_eq!(w.items_with_sk_prefix("LeadsTable", "SUB#").await.len(), 1);

    let other = lead_intake::handle(&intake, with_key(json!({"email": "j@example.com"}))).await;
    assert_eq!(other.status(), 422);
    assert_eq!(
        response_json(&other)["error"]["code"],
        "idempotency_key_reused"
    );
}

#[tokio::test]
async fn tenants_are_isolated() {
    let w = world().await;
    let intake = w.intake(None);
    let tenant_b = TenantId::parse("tenant-b").unwrap();
    let form_b =
        infra::seed::demo_form(&tenant_b, &FormId::parse("b-contact").unwrap(), WEB_ORIGIN);
    w.put_tenant(&tenant_b, TenantStatus::Active, &form_b)
        .await
        .unwrap();

    // Tenant A erased this person; tenant B still receives their submissions.
    let bidx = w.key.email(&Email::parse("shared@example.com").unwrap());
    let k = shared_core::keys::suppression(&w.tenant, &bidx);
    w.clients
        .dynamo
        .put_item()
        .table_name(w.table("PrivacyTable"))
        .item("pk", aws_sdk_dynamodb::types::AttributeValue::S(k.pk))
        .item("sk", aws_sdk_dynamodb::types::AttributeValue::S(k.sk))
        .send()
        .await
        .unwrap();
    let mut e = json_submission(&json!({"email": "shared@example.com"}));
    e["rawPath"] = json!("/v1/forms/b-contact/submissions");
    e["pathParameters"]["formId"] = json!("b-contact");
    let resp = lead_intake::handle(&intake, request(&e)).await;
    assert_eq!(resp.status(), 201);
    let leads = w.items_with_sk_prefix("LeadsTable", "LEAD").await;
    assert_eq!(leads.len(), 1);
    assert_eq!(s(&leads[0], "tenant_id"), Some("tenant-b"));
    assert!(s(&leads[0], "pk").unwrap().starts_with("TENANT#tenant-b#"));
    // The same person's lead id differs per tenant.
    assert_ne!(
        w.key.lead_id(&w.tenant, &bidx),
        w.key.lead_id(&tenant_b, &bidx)
    );
}

#[tokio::test]
async fn every_stored_attribute_is_declared_in_the_data_inventory() {
    let w = world().await;
    let intake = w.intake(None);
    let mut e = json_submission(&json!({
        "email": "inv@example.com", "name": "In Ventory", "company": "Inv SRL",
        "phone": "+40712345678", "message": "m", "consent_marketing": false,
        "_page_url": "https://site.example/contact", "_referrer": "https://search.example/"
    }));
    e["headers"]["idempotency-key"] = json!("inv-1");
    assert_eq!(
        lead_intake::handle(&intake, request(&e)).await.status(),
        201
    );
    assert_eq!(
        lead_intake::handle(
            &intake,
            request(&json_submission(&json!({"email": "inv@example.com"})))
        )
        .await
        .status(),
        201
    );

    for (logical, table) in [
        ("TenantsTable", Table::Tenants),
        ("LeadsTable", Table::Leads),
        ("PrivacyTable", Table::Privacy),
        ("OpsTable", Table::Ops),
    ] {
        for item in w.scan(logical).await {
            let sk = s(&item, "sk").unwrap_or_default().to_string();
            for name in item.keys() {
                assert!(
                    inventory::declaration(table, &sk, name).is_some(),
                    "{logical} item {sk:?} stores undeclared attribute {name:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn logs_carry_request_ids_and_no_personal_data() {
    let w = world().await;
    let intake = w.intake(None);
    let (logs, _capture) = capture_logs();

    let secret_email = "very.private.person@example.org";
    let mut e = json_submission(&json!({
        "email": secret_email, "name": "Privatus Maximus", "phone": "+40799111222",
        "message": "my secret message", "company": "Hidden Co"
    }));
    e["requestContext"]["requestId"] = json!("req-log-test-1");
    e["requestContext"]["http"]["sourceIp"] = json!("198.51.100.77");
    e["headers"]["user-agent"] = json!("SecretAgent/9.9");
    let req = request(&e);
    {
        use tracing::Instrument;
        let resp = lead_intake::handle(&intake, req)
            .instrument(shared_core::telemetry::request_span("req-log-test-1"))
            .await;
        assert_eq!(resp.status(), 201);
        let mut bad = json_submission(&json!({"email": "broken@", "name": "Privatus Maximus"}));
        bad["requestContext"]["requestId"] = json!("req-log-test-2");
        let resp = lead_intake::handle(&intake, request(&bad))
            .instrument(shared_core::telemetry::request_span("req-log-test-2"))
            .await;
        assert_eq!(resp.status(), 400);
    }

    // Both requests' completion lines must be there before their absence of data means anything.
    let text = assert_logs_hold_without(
        &logs,
        &[
            "\"request_id\":\"req-log-test-1\"",
            "\"request_id\":\"req-log-test-2\"",
            "request completed",
            "\"status\":201",
            "\"status\":400",
        ],
        &[
            secret_email,
            "very.private",
            "Privatus",
            "+40799111222",
            "40799111222",
            "secret message",
            "Hidden Co",
            "198.51.100.77",
            "SecretAgent",
            "broken@",
        ],
    );
    assert!(
        text.lines().count() >= 4,
        "expected log lines, got:\n{text}"
    );
    let mut metric_lines = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON log line");
        // Metric lines (CloudWatch EMF) are aggregated into per-minute figures, not read per
        // request; they are held to the same no-personal-data rule above.
        if v.get("_aws").is_some() {
            metric_lines += 1;
            continue;
        }
        let has_id = v["spans"].as_array().is_some_and(|s| {
            s.iter().any(|sp| {
                sp["request_id"]
                    .as_str()
                    .is_some_and(|id| id.starts_with("req-log-test-"))
            })
        });
        assert!(has_id, "log line without request id: {line}");
    }
    assert_eq!(
        metric_lines, 2,
        "one metric per submission (accepted, rejected):\n{text}"
    );
    assert!(text.contains("\"tenant_id\":\"tenant-a\""));
}

/// API Gateway hands the function a body that is not UTF-8 base64-encoded; whatever its content
/// type, the answer is a 4xx JSON error (the fixture asks for JSON) and nothing is stored. The
/// same post from a plain HTML form (no `Accept: application/json`) gets a 4xx page.
#[tokio::test]
async fn bodies_that_are_not_utf8_are_4xx_and_store_nothing() {
    let w = world().await;
    let intake = w.intake(None);
    let before = w.snapshot().await;
    for bytes in NOT_UTF8_BODIES {
        for ct in BODY_CONTENT_TYPES {
            let e = fixture("lead-intake/submit-json.json");
            let resp = lead_intake::handle(&intake, with_base64_body(e, bytes, ct)).await;
            assert_json_client_error(&resp, &format!("{ct} {bytes:?}"));

            let mut e = fixture("lead-intake/submit-form.json");
            e["headers"].as_object_mut().unwrap().remove("accept");
            let resp = lead_intake::handle(&intake, with_base64_body(e, bytes, ct)).await;
            let status = resp.status().as_u16();
            assert!(
                (400..500).contains(&status),
                "form post {ct} {bytes:?}: {status}"
            );
        }
    }
    assert_eq!(w.snapshot().await, before, "nothing stored");
}

/// The log check of every suite cannot pass on a capture that caught nothing, nor on one that
/// lacks what the calls must have logged.
#[test]
#[should_panic(expected = "the capture caught no log line")]
fn an_empty_log_capture_fails_the_no_personal_data_check() {
    let (logs, _capture) = capture_logs();
    assert_logs_hold_without(&logs, &["request completed"], &["ana@example.com"]);
}

#[test]
#[should_panic(expected = "the capture lacks")]
fn a_capture_without_the_expected_lines_fails_the_no_personal_data_check() {
    let (logs, _capture) = capture_logs();
    tracing::info!("something else entirely");
    assert_logs_hold_without(&logs, &["request completed"], &["ana@example.com"]);
}

/// The rate limits count on the tenant's usage counter item, one count per form and one per form
/// and IP, named by their minute: a past minute's counts never count again, and the next write
/// removes them, so the item holds the current minute's only.
#[tokio::test]
async fn a_past_minutes_rate_counts_are_removed_by_the_next_submission() {
    let w = world().await;
    let settings = IntakeSettings {
        rate_limit_per_ip_per_minute: 1,
        ..IntakeSettings::default()
    };
    let intake = w.intake(Some(settings));
    let from = |ip: &str, n: usize| {
        let mut e = json_submission(&json!({"email": format!("minute{n}@example.com")}));
        e["requestContext"]["http"]["sourceIp"] = json!(ip);
        request(&e)
    };
    let rate_counts = || async {
        let usage = w
            .scan("OpsTable")
            .await
            .into_iter()
            .filter(|it| s(it, "sk") == Some("USAGE"))
            .collect::<Vec<_>>();
        assert_eq!(usage.len(), 1, "one counter item: {usage:?}");
        let mut names: Vec<String> = usage[0]
            .keys()
            .filter(|k| k.starts_with("rf_") || k.starts_with("ri_"))
            .cloned()
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        lead_intake::handle(&intake, from("192.0.2.7", 1))
            .await
            .status(),
        201
    );
    assert_eq!(
        lead_intake::handle(&intake, from("192.0.2.8", 2))
            .await
            .status(),
        201
    );
    assert_eq!(
        lead_intake::handle(&intake, from("192.0.2.7", 3))
            .await
            .status(),
        429
    );
    let minute = w.clock.now().unix_timestamp().div_euclid(60);
    let first = rate_counts().await;
    assert_eq!(first.len(), 3, "the form's count and two IPs': {first:?}");
    assert!(
        first.iter().all(|n| n.contains(&format!("_{minute}_"))),
        "{first:?}"
    );
    assert!(
        first.contains(&format!("rf_{minute}_{}", w.form.form_id)),
        "{first:?}"
    );

    w.clock.advance(time::Duration::seconds(60));
    assert_eq!(
        lead_intake::handle(&intake, from("192.0.2.7", 4))
            .await
            .status(),
        201
    );
    let next = rate_counts().await;
    assert_eq!(
        next.len(),
        2,
        "the new minute's form and IP counts only: {next:?}"
    );
    assert!(
        next.iter()
            .all(|n| n.contains(&format!("_{}_", minute + 1))),
        "{next:?}"
    );
}

// ---------------------------------------------------------------- conditions under races

/// `n` submissions of `people` (one email each) from `ips`, joined at once, through a metered
/// client: their statuses, and the writes sent and refused by DynamoDB.
async fn race(
    w: &World,
    settings: IntakeSettings,
    bodies: Vec<(serde_json::Value, String, Option<&str>)>,
) -> (Vec<(u16, serde_json::Value)>, (usize, usize)) {
    let meter = w.meter();
    let intake = w.intake_with_client(meter.instrument(&w.clients.dynamo), Some(settings));
    let mut futures = Vec::new();
    for (body, ip, key) in &bodies {
        let mut e = json_submission(body);
        e["requestContext"]["http"]["sourceIp"] = json!(ip);
        if let Some(k) = key {
            e["headers"]["idempotency-key"] = json!(k);
        }
        let intake = &intake;
        futures.push(async move {
            let resp = lead_intake::handle(intake, request(&e)).await;
            (resp.status().as_u16(), response_json(&resp))
        });
    }
    let replies = join_all(futures).await;
    (replies, writes_sent_and_refused(&meter))
}

fn statuses(replies: &[(u16, serde_json::Value)]) -> Vec<u16> {
    let mut s: Vec<u16> = replies.iter().map(|(s, _)| *s).collect();
    s.sort_unstable();
    s
}

/// Eight people post from one address at once while its window allows 3: every request reads
/// a window with room, so it is the transaction's condition on the window that must refuse 5.
#[tokio::test]
async fn concurrent_submissions_over_the_ip_window_are_refused_by_its_condition() {
    let w = world().await;
    let settings = IntakeSettings {
        rate_limit_per_ip_per_minute: 3,
        rate_limit_per_form_per_minute: 1000,
        ..w.intake_config().settings
    };
    let bodies = (0..8)
        .map(|i| {
            let email = format!("window{i}@example.com");
            (json!({ "email": email }), "198.51.100.9".to_string(), None)
        })
        .collect();
    let (replies, (sent, refused)) = race(&w, settings, bodies).await;
    assert_eq!(
        statuses(&replies),
        [201, 201, 201, 429, 429, 429, 429, 429],
        "{replies:?}"
    );
    assert_eq!(w.items_with_sk_prefix("LeadsTable", "SUB#").await.len(), 3);
    assert!(
        refused >= 1,
        "the window's condition refused none of {sent} writes: the pre-check did all the work"
    );
}

/// Eight people post at once while the month's quota has room for 3.
#[tokio::test]
async fn concurrent_submissions_over_the_quota_are_refused_by_the_counter_condition() {
    let w = world().await;
    let mut settings = IntakeSettings {
        rate_limit_per_ip_per_minute: 100,
        rate_limit_per_form_per_minute: 1000,
        ..w.intake_config().settings
    };
    settings.billing.free_tier.monthly_submissions = 3;
    let bodies = (0..8)
        .map(|i| {
            let email = format!("quota{i}@example.com");
            (json!({ "email": email }), format!("198.51.100.{i}"), None)
        })
        .collect();
    let (replies, (sent, refused)) = race(&w, settings, bodies).await;
    assert_eq!(
        statuses(&replies),
        [201, 201, 201, 402, 402, 402, 402, 402],
        "{replies:?}"
    );
    for (status, body) in &replies {
        if *status == 402 {
            assert_eq!(body["error"]["code"], "quota_exceeded");
        }
    }
    assert_eq!(w.items_with_sk_prefix("LeadsTable", "SUB#").await.len(), 3);
    assert!(
        refused >= 1,
        "the counter's condition refused none of {sent} writes"
    );
}

/// Six retries of one submission (same Idempotency-Key, same body) at once: one is stored and
/// every retry gets its answer; the same key with other bodies at once is refused.
#[tokio::test]
async fn concurrent_retries_with_one_idempotency_key_store_one_submission() {
    let w = world().await;
    let settings = w.intake_config().settings;
    let body = json!({ "email": "retry@example.com", "message": "once" });
    let bodies = (0..6)
        .map(|i| (body.clone(), format!("198.51.100.{i}"), Some("key-race-1")))
        .collect();
    let (replies, (sent, refused)) = race(&w, settings.clone(), bodies).await;
    assert_eq!(statuses(&replies), [201; 6], "{replies:?}");
    let ids: HashSet<String> = replies
        .iter()
        .map(|(_, b)| b["submission_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 1, "every retry answers the first submission");
    assert_eq!(w.items_with_sk_prefix("LeadsTable", "SUB#").await.len(), 1);
    assert!(
        refused >= 1,
        "the idempotency record's condition refused none of {sent} writes"
    );

    let bodies = (0..6)
        .map(|i| {
            let b = json!({ "email": "retry@example.com", "message": format!("other {i}") });
            (b, format!("198.51.100.{}", 20 + i), Some("key-race-2"))
        })
        .collect();
    let (replies, _) = race(&w, settings, bodies).await;
    assert_eq!(
        statuses(&replies),
        [201, 422, 422, 422, 422, 422],
        "{replies:?}"
    );
    assert_eq!(w.items_with_sk_prefix("LeadsTable", "SUB#").await.len(), 2);
}

/// Loses the answer of the first `TransactWriteItems` it sees, after the emulator applied it: the
/// SDK sees a 500 and sends the same transaction again (what a dropped connection or an attempt
/// timeout does in Lambda).
#[derive(Debug, Default, Clone)]
struct LoseFirstTransactionAnswer(std::sync::Arc<std::sync::atomic::AtomicUsize>);

#[derive(Debug, Clone, Copy)]
struct LoseThisOne;

impl aws_smithy_types::config_bag::Storable for LoseThisOne {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl aws_sdk_dynamodb::config::Intercept for LoseFirstTransactionAnswer {
    fn name(&self) -> &'static str {
        "LoseFirstTransactionAnswer"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _rc: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or_default();
        if target.ends_with(".TransactWriteItems")
            && self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0
        {
            cfg.interceptor_state().store_put(LoseThisOne);
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeDeserializationInterceptorContextMut<'_>,
        _rc: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        if cfg.load::<LoseThisOne>().is_some() {
            cfg.interceptor_state().unset::<LoseThisOne>();
            let response = context.response_mut();
            *response.status_mut() = 500.try_into()?;
            *response.body_mut() = aws_smithy_types::body::SdkBody::from(
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"answer lost"}"#,
            );
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_transaction_resent_after_it_landed_is_one_submission_not_a_second_or_an_error() {
    // DynamoDB answers a resent transaction by its client request token; the emulator applies
    // it again, and its conditions then meet the first attempt's own items. Either way the
    // write happened once: the request must be answered as stored, with nothing doubled.
    let w = world().await;
    for (i, body) in [
        json!({"email": "resent@example.com", "name": "First", "message": "new lead"}),
        json!({"email": "resent@example.com", "name": "First", "message": "same person again"}),
    ]
    .iter()
    .enumerate()
    {
        let lose = LoseFirstTransactionAnswer::default();
        let client = aws_sdk_dynamodb::Client::from_conf(
            w.clients
                .dynamo
                .config()
                .to_builder()
                .interceptor(lose.clone())
                .build(),
        );
        let intake = w.intake_with_client(client, None);
        let mut e = json_submission(body);
        e["requestContext"]["http"]["sourceIp"] = json!(format!("198.51.100.{}", 10 + i));
        let resp = lead_intake::handle(&intake, request(&e)).await;
        assert_eq!(resp.status(), 201, "{}", response_json(&resp));
        assert!(
            lose.0.load(std::sync::atomic::Ordering::SeqCst) >= 2,
            "the transaction was sent again"
        );
    }
    assert_eq!(w.items_with_sk_prefix("LeadsTable", "SUB#").await.len(), 2);
    assert_eq!(w.items_with_sk_prefix("LeadsTable", "LEAD").await.len(), 1);
}
