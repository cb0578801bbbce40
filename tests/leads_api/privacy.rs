//! The data inventory and the logs.

use super::*;
use shared_leads::{actions, AuditEntry};
use shared_privacy::inventory::{self, Table};

#[tokio::test]
async fn every_stored_attribute_is_declared_in_the_data_inventory() {
    let t = setup().await;
    let (tenant, owner) = workspace(&t, "inv-owner").await;
    let colleague = member(&t, &tenant, Role::Member, "inv-member").await;
    let mut body = contact_form();
    body["consents"] = json!([{"key": "marketing", "text": "News."}]);
    body["fields"] = json!([{"name": "email", "type": "email", "required": true}, {"name": "diet", "type": "text", "special_category": "religion"}]);
    body["special_category_basis"] = json!("Art. 9(2)(a): explicit consent");
    let form = create_form(&t, &owner, body).await;
    let lead = submit(
        &t,
        &form,
        json!({"email": "inv@example.com", "consent_marketing": true}),
    )
    .await["lead_id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v1/leads/{lead}");
    let r = call(&t, &owner, "PATCH", &path, Some(json!({"version": 1, "stage": "won", "owner_user_id": colleague.id(), "company": "Inv"}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call(
        &t,
        &owner,
        "POST",
        &format!("{path}/notes"),
        Some(json!({"text": "n"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = call(
        &t,
        &owner,
        "PUT",
        "/v1/pipeline",
        Some(json!({"stages": [{"id": "new"}, {"id": "won"}]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let audit = AuditEntry {
        entry_id: "e1".into(),
        action: actions::LEAD_RESTRICTED.into(),
        fields: vec!["restricted".into()],
        actor_user_id: None,
        api_key_id: None,
        at: rfc3339(t.w.clock.now()),
    };
    t.app
        .store
        .set_restricted(
            &tenant,
            &LeadId::parse(&lead).unwrap(),
            true,
            &audit,
            t.w.clock.now(),
        )
        .await
        .unwrap();
    let second = create_form(&t, &owner, contact_form()).await;
    let r = call(&t, &owner, "DELETE", &format!("/v1/forms/{second}"), None).await;
    assert_eq!(r.status, 204, "{}", r.body);

    for (logical, table) in [
        ("TenantsTable", Table::Tenants),
        ("LeadsTable", Table::Leads),
    ] {
        let items = t.w.scan(logical).await;
        assert!(!items.is_empty(), "{logical} holds what the calls wrote");
        for item in items {
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

fn capture_logs() -> (
    shared_core::telemetry::CapturedLogs,
    shared_core::telemetry::CaptureGuard,
) {
    shared_core::telemetry::capture()
}

#[tokio::test]
async fn no_contact_data_note_or_token_reaches_the_logs() {
    let t = setup().await;
    let (tenant, owner) = workspace(&t, "logs-owner").await;
    let ids = seed_leads(&t, &tenant, 1, one_seed("logs")).await;
    let path = format!("/v1/leads/{}", ids[0]);
    let (logs, _capture) = capture_logs();
    let r = call(&t, &owner, "PATCH", &path, Some(json!({"version": 1, "name": "Privatus Maximus", "email": "very.private@example.org", "phone": "+40799111222", "company": "Hidden Co"}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call(
        &t,
        &owner,
        "POST",
        &format!("{path}/notes"),
        Some(json!({"text": "owes us a secret favour"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = call(
        &t,
        &owner,
        "PATCH",
        &path,
        Some(json!({"version": 2, "email": "also.secret@"})),
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "invalid_fields"), "{}", r.body);
    let r = get(&t, &owner, "/v1/leads?email=very.private@example.org").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = get(&t, &owner, &path).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let text = assert_logs_hold_without(
        &logs,
        &[
            "\"route\":\"patch_lead\"",
            "\"route\":\"add_note\"",
            "\"route\":\"list_leads\"",
            "\"route\":\"get_lead\"",
        ],
        &[
            "Privatus",
            "very.private",
            "40799111222",
            "Hidden Co",
            "secret favour",
            "also.secret",
            owner.token.as_str(),
        ],
    );
    assert!(
        text.lines().count() >= 5,
        "expected log lines, got:\n{text}"
    );
    assert!(text.contains(&format!("\"tenant_id\":\"{tenant}\"")));
    assert!(text.contains("\"route\":\"patch_lead\""));
}
