//! Editing leads: versions, stage history, audit trail, restriction.

use super::*;
use shared_core::clock::IdGenerator;
use shared_leads::{actions, AuditEntry};

#[tokio::test]
async fn edits_are_versioned_a_stale_one_gets_409_and_history_holds_names_not_values() {
    let t = setup().await;
    let (tenant, owner) = workspace(&t, "edit-owner").await;
    let colleague = member(&t, &tenant, Role::Member, "edit-member").await;
    let ids = seed_leads(&t, &tenant, 1, one_seed("edit")).await;
    let path = format!("/v1/leads/{}", ids[0]);

    let r = get(&t, &owner, &path).await;
    assert_eq!(r.etag.as_deref(), Some("\"1\""));

    // Each edit a second apart: the audit trail sorts by time.
    t.w.clock.advance(Duration::seconds(1));
    let r = call(
        &t,
        &owner,
        "PATCH",
        &path,
        Some(json!({"version": 1, "stage": "contacted", "company": "Secret Corp"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.body["version"].clone(), r.body["stage"].clone()),
        (json!(2), json!("contacted"))
    );
    assert_eq!(r.etag.as_deref(), Some("\"2\""));

    // Someone still holding version 1 loses, and nothing is written.
    let r = call(
        &t,
        &colleague,
        "PATCH",
        &path,
        Some(json!({"version": 1, "name": "Overwrite"})),
    )
    .await;
    assert_eq!((r.status, r.code()), (409, "version_conflict"));
    // If-Match works as well as the body's version.
    t.w.clock.advance(Duration::seconds(1));
    let mut e = event(
        "PATCH",
        &path,
        "",
        Some(&json!({"owner_user_id": colleague.id()})),
        Some(&colleague.token),
    );
    e["headers"]["if-match"] = json!("\"2\"");
    let r = send(&t, &e).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["owner_user_id"], json!(colleague.id()));

    for (body, code) in [
        (json!({"name": "No version"}), "version_required"),
        (json!({"version": 3, "stage": "nowhere"}), "invalid_fields"),
        (
            json!({"version": 3, "owner_user_id": "us-stranger"}),
            "invalid_fields",
        ),
        (json!({"version": 3, "email": "broken@"}), "invalid_fields"),
        (
            json!({"version": 3, "phone": "0712 345 678"}),
            "invalid_fields",
        ),
        (json!({"version": 3, "shoe_size": 44}), "invalid_body"),
    ] {
        let r = call(&t, &owner, "PATCH", &path, Some(body.clone())).await;
        assert_eq!((r.status, r.code()), (400, code), "{body}: {}", r.body);
    }

    // A new email is normalized and findable by its blind index; the old one no longer finds it.
    t.w.clock.advance(Duration::seconds(1));
    let r = call(&t, &owner, "PATCH", &path, Some(json!({"version": 3, "email": "  New.Address@Example.COM ", "phone": "+40 712 345 678"}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["email"], json!("new.address@example.com"));
    assert_eq!(r.body["phone"], json!("+40712345678"));
    assert_eq!(
        get(&t, &owner, "/v1/leads?email=new.address@example.com")
            .await
            .ids(),
        [ids[0].clone()]
    );
    assert!(get(&t, &owner, "/v1/leads?email=edit.0@example.com")
        .await
        .items()
        .is_empty());
    // The stage index follows the stage.
    assert_eq!(
        get(&t, &owner, "/v1/leads?stage=contacted").await.ids(),
        [ids[0].clone()]
    );
    assert!(get(&t, &owner, "/v1/leads?stage=new")
        .await
        .items()
        .is_empty());

    // An edit that changes nothing writes nothing.
    let r = call(
        &t,
        &owner,
        "PATCH",
        &path,
        Some(json!({"version": 4, "stage": "contacted"})),
    )
    .await;
    assert_eq!((r.status, r.body["version"].clone()), (200, json!(4)));

    let lead = get(&t, &owner, &path).await;
    let history = lead.body["stage_history"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0]["from"].clone(), history[0]["to"].clone()),
        (json!("new"), json!("contacted"))
    );
    assert_eq!(history[0]["actor_user_id"], json!(owner.id()));
    let audit = lead.body["audit"].as_array().unwrap();
    let fields: Vec<Vec<String>> = audit
        .iter()
        .map(|a| {
            a["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_string())
                .collect()
        })
        .collect();
    assert_eq!(
        fields,
        [
            vec!["company", "stage"],
            vec!["owner_user_id"],
            vec!["email", "phone"]
        ]
    );
    assert_eq!(audit[1]["actor_user_id"], json!(colleague.id()));
    let stored_audit: Vec<Item> = t.w.items_with_sk_prefix("LeadsTable", "AUDIT#").await;
    let text = format!("{stored_audit:?}");
    for value in ["Secret Corp", "new.address", "712345678"] {
        assert!(!text.contains(value), "the audit trail copies {value:?}");
    }
}

#[tokio::test]
async fn a_restricted_lead_is_read_only_until_the_restriction_is_lifted() {
    let t = setup().await;
    let (tenant, owner) = workspace(&t, "restrict-owner").await;
    let ids = seed_leads(&t, &tenant, 1, one_seed("restricted")).await;
    let lead = LeadId::parse(&ids[0]).unwrap();
    let path = format!("/v1/leads/{lead}");
    let note = call(
        &t,
        &owner,
        "POST",
        &format!("{path}/notes"),
        Some(json!({"text": "before"})),
    )
    .await
    .str("id");

    let audit = |action: &str| AuditEntry {
        entry_id: UlidGenerator.new_id(OffsetDateTime::now_utc()),
        action: action.into(),
        fields: vec!["restricted".into()],
        actor_user_id: None,
        api_key_id: None,
        at: rfc3339(t.w.clock.now()),
    };
    assert!(t
        .app
        .store
        .set_restricted(
            &tenant,
            &lead,
            true,
            &audit(actions::LEAD_RESTRICTED),
            t.w.clock.now()
        )
        .await
        .unwrap());

    let r = get(&t, &owner, &path).await;
    assert_eq!((r.status, r.body["restricted"].clone()), (200, json!(true)));
    assert_eq!(
        get(&t, &owner, "/v1/leads").await.items()[0]["restricted"],
        json!(true)
    );
    assert_eq!(get(&t, &owner, &format!("{path}/notes")).await.status, 200);
    for (method, p, body) in [
        (
            "PATCH",
            path.clone(),
            Some(json!({"version": 1, "name": "Edited"})),
        ),
        (
            "POST",
            format!("{path}/notes"),
            Some(json!({"text": "after"})),
        ),
        ("DELETE", format!("{path}/notes/{note}"), None),
        ("DELETE", path.clone(), None),
    ] {
        let r = call(&t, &owner, method, &p, body).await;
        assert_eq!(
            (r.status, r.code()),
            (409, "lead_restricted"),
            "{method} {p}: {}",
            r.body
        );
    }

    assert!(t
        .app
        .store
        .set_restricted(
            &tenant,
            &lead,
            false,
            &audit(actions::LEAD_UNRESTRICTED),
            t.w.clock.now()
        )
        .await
        .unwrap());
    let r = call(
        &t,
        &owner,
        "PATCH",
        &path,
        Some(json!({"version": 1, "name": "Edited"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let actions_seen: Vec<Value> = get(&t, &owner, &path).await.body["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].clone())
        .collect();
    assert!(
        actions_seen.contains(&json!("lead.restricted"))
            && actions_seen.contains(&json!("lead.unrestricted"))
    );
    // No such lead: false, nothing written.
    let ghost = LeadId::parse("ld-ghost").unwrap();
    assert!(!t
        .app
        .store
        .set_restricted(
            &tenant,
            &ghost,
            true,
            &audit(actions::LEAD_RESTRICTED),
            t.w.clock.now()
        )
        .await
        .unwrap());
}

/// Issue 12: a lead's id derives from its first email, but its email can be edited. After an
/// edit from Ana's address to Bea's, Bea's submissions go to that lead and Ana's next one to a
/// lead of her own (before, it landed in the lead that now says Bea). An edit to an address
/// another lead already has is refused, not merged silently.
#[tokio::test]
async fn an_email_edit_moves_the_address_so_the_old_address_never_reaches_the_lead_again() {
    let t = setup().await;
    let (tenant, owner) = workspace(&t, "route-owner").await;
    let _ = tenant;
    let form = create_form(&t, &owner, contact_form()).await;
    let (ana, bea, cai) = (
        "ana.route@example.com",
        "bea.route@example.com",
        "cai.route@example.com",
    );
    let lead = submit(&t, &form, json!({"email": ana, "message": "ana 1"})).await["lead_id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v1/leads/{lead}");
    let r = call(
        &t,
        &owner,
        "PATCH",
        &path,
        Some(json!({"version": 1, "email": bea})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    let again = submit(&t, &form, json!({"email": ana, "message": "ana 2"})).await;
    assert_ne!(
        again["lead_id"],
        json!(lead),
        "Ana's submission reached the lead whose email is now Bea's"
    );
    let beas = submit(&t, &form, json!({"email": bea, "message": "bea 1"})).await;
    assert_eq!(
        beas["lead_id"],
        json!(lead),
        "Bea's submission goes to her lead"
    );
    let anas_again = submit(&t, &form, json!({"email": ana, "message": "ana 3"})).await;
    assert_eq!(
        anas_again["lead_id"], again["lead_id"],
        "Ana's new lead is found again"
    );

    let detail = get(&t, &owner, &path).await;
    let messages: Vec<String> = detail.body["submissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["fields"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(
        !messages.iter().any(|m| m == "ana 2" || m == "ana 3"),
        "{messages:?}"
    );

    // Cai's lead cannot take Bea's address: it already leads to another lead.
    let cais = submit(&t, &form, json!({"email": cai, "message": "cai 1"})).await["lead_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = call(
        &t,
        &owner,
        "PATCH",
        &format!("/v1/leads/{cais}"),
        Some(json!({"version": 1, "email": bea})),
    )
    .await;
    assert_eq!((r.status, r.code()), (409, "contact_in_use"), "{}", r.body);
    // ... nor Ana's, whose address leads to her new lead.
    let r = call(
        &t,
        &owner,
        "PATCH",
        &format!("/v1/leads/{cais}"),
        Some(json!({"version": 1, "email": ana})),
    )
    .await;
    assert_eq!((r.status, r.code()), (409, "contact_in_use"), "{}", r.body);
}
