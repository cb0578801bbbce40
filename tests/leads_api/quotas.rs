//! What keeps a flood from spending a tenant's monthly quota, and tells the owner: a form's
//! daily cap (set through the forms API, enforced by lead intake's counter condition) and the
//! quota alerts at 80 % and 100 % (one email each per month, however many submissions race).

use super::*;
use shared_leads::intake::IntakeSettings;

/// Generous limits, so only the cap or the quota under test refuses anything.
fn settings(t: &T, monthly_quota: u32) -> IntakeSettings {
    let mut s = IntakeSettings {
        rate_limit_per_ip_per_minute: 100,
        rate_limit_per_form_per_minute: 1000,
        ..t.w.intake_config().settings
    };
    s.billing.free_tier.monthly_submissions = monthly_quota;
    s
}

/// `n` people submit to `form` at once, each from an address of their own, through one
/// metered intake: their statuses (sorted), `Retry-After`s and error codes, and the writes
/// DynamoDB refused.
async fn flood(
    t: &T,
    form: &str,
    label: &str,
    n: usize,
    settings: IntakeSettings,
) -> (Vec<u16>, Vec<(u16, Option<String>, String)>, usize) {
    let meter = t.w.meter();
    let intake =
        t.w.intake_with_client(meter.instrument(&t.w.clients.dynamo), Some(settings));
    let mut futures = Vec::new();
    for i in 0..n {
        let mut e = json_submission(&json!({ "email": format!("{label}{i}@example.com") }));
        e["rawPath"] = json!(format!("/v1/forms/{form}/submissions"));
        e["pathParameters"]["formId"] = json!(form);
        e["requestContext"]["http"]["sourceIp"] = json!(format!("198.51.100.{}", i + 1));
        let intake = &intake;
        futures.push(async move {
            let resp = lead_intake::handle(intake, request(&e)).await;
            let body = response_json(&resp);
            (
                resp.status().as_u16(),
                header(&resp, "retry-after").map(str::to_string),
                body["error"]["code"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        });
    }
    let replies = join_all(futures).await;
    let mut statuses: Vec<u16> = replies.iter().map(|r| r.0).collect();
    statuses.sort_unstable();
    let (_, refused) = writes_sent_and_refused(&meter);
    (statuses, replies, refused)
}

#[tokio::test]
async fn a_daily_cap_set_through_the_forms_api_holds_under_concurrent_submissions() {
    let t = setup().await;
    let (_tenant, owner) = workspace(&t, "cap-owner").await;

    let mut body = contact_form();
    body["daily_cap"] = json!(3);
    let r = call(&t, &owner, "POST", "/v1/forms", Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["daily_cap"], json!(3));
    let form = r.str("id");
    let path = format!("/v1/forms/{form}");

    // Strict: a whole number from 1 to 1,000,000, or null.
    for bad in [json!(0), json!(-1), json!(1_000_001)] {
        let r = call(
            &t,
            &owner,
            "PATCH",
            &path,
            Some(json!({ "daily_cap": bad })),
        )
        .await;
        assert_eq!((r.status, r.code()), (400, "invalid_fields"), "{bad}");
        assert!(
            r.body["error"]["fields"]["daily_cap"].is_string(),
            "{}",
            r.body
        );
    }
    for bad in [json!("5"), json!(2.5), json!(true)] {
        let r = call(
            &t,
            &owner,
            "PATCH",
            &path,
            Some(json!({ "daily_cap": bad })),
        )
        .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    let r = call(
        &t,
        &owner,
        "PATCH",
        &path,
        Some(json!({ "daily_cap": null })),
    )
    .await;
    assert_eq!((r.status, &r.body["daily_cap"]), (200, &json!(null)));
    let r = call(&t, &owner, "PATCH", &path, Some(json!({ "daily_cap": 3 }))).await;
    assert_eq!((r.status, &r.body["daily_cap"]), (200, &json!(3)));
    assert_eq!(get(&t, &owner, &path).await.body["daily_cap"], json!(3));

    // Ten visitors at once, from ten addresses: three get in, seven are told to come back
    // tomorrow, and it is the counter's condition that refused (every one read room).
    let (statuses, replies, refused) = flood(&t, &form, "capped", 10, settings(&t, 100)).await;
    assert_eq!(statuses, [201, 201, 201, 429, 429, 429, 429, 429, 429, 429]);
    for (status, retry_after, code) in &replies {
        if *status == 429 {
            assert_eq!(code, "rate_limited");
            let secs: u64 = retry_after.as_deref().unwrap().parse().unwrap();
            assert!((1..=86_400).contains(&secs), "until midnight UTC: {secs}");
        }
    }
    assert!(refused >= 1, "the daily count's condition refused nothing");
    assert_eq!(
        t.w.items_with_sk_prefix("LeadsTable", "SUB#").await.len(),
        3
    );

    // Another form of the tenant has no cap and still takes submissions.
    let other = create_form(&t, &owner, contact_form()).await;
    submit(&t, &other, json!({"email": "uncapped@example.com"})).await;
}

#[tokio::test]
async fn quota_alerts_reach_the_owner_once_at_80_and_100_percent_under_concurrency() {
    let t = setup().await;
    let (tenant, owner) = workspace(&t, "alert-owner").await;
    let admin = member(&t, &tenant, Role::Admin, "alert-admin").await;
    let form = create_form(&t, &owner, contact_form()).await;
    let owner_email = owner.user.email.as_str().to_string();

    // Sixteen submissions at once against a quota of 10: 80 % is the 8th, 100 % the 10th.
    let (statuses, _, _) = flood(&t, &form, "alert", 16, settings(&t, 10)).await;
    assert_eq!(
        statuses,
        [201, 201, 201, 201, 201, 201, 201, 201, 201, 201, 402, 402, 402, 402, 402, 402]
    );
    let subjects = |to: &str| -> Vec<String> {
        let mut s: Vec<String> = t.w.emails_to(to).into_iter().map(|m| m.subject).collect();
        s.sort();
        s
    };
    assert_eq!(
        subjects(&owner_email),
        [
            "You have used 80% of this month's form submissions",
            "Your forms have used this month's submission quota",
        ]
    );
    let mails = t.w.emails_to(&owner_email);
    let eighty = mails.iter().find(|m| m.subject.contains("80%")).unwrap();
    assert!(
        eighty.body.contains("8 of the 10 submissions"),
        "{}",
        eighty.body
    );
    assert!(
        subjects(admin.user.email.as_str()).is_empty(),
        "owners only"
    );

    // More submissions, refused, alert nobody again.
    let (statuses, _, _) = flood(&t, &form, "late", 4, settings(&t, 10)).await;
    assert_eq!(statuses, [402; 4]);
    assert_eq!(subjects(&owner_email).len(), 2);

    // The marks are on the month's usage counter.
    let usage: Vec<Item> =
        t.w.scan("OpsTable")
            .await
            .into_iter()
            .filter(|it| {
                s(it, "pk").is_some_and(|pk| pk.starts_with(&format!("TENANT#{tenant}#USAGE#")))
            })
            .collect();
    assert_eq!(usage.len(), 1);
    assert!(usage[0].contains_key("alert_80_at") && usage[0].contains_key("alert_100_at"));
    assert_eq!(s(&usage[0], "n"), None);
    assert_eq!(usage[0]["n"].as_n().unwrap(), "10");
}
