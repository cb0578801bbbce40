//! Deleting a lead: every item under it and its objects in S3.

use super::*;

async fn put_object(t: &T, key: &str) {
    t.w.clients
        .s3
        .put_object()
        .bucket(t.app.attachments_bucket.clone())
        .key(key)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(
            b"%PDF-1.7 test",
        ))
        .send()
        .await
        .expect("put object");
}

async fn objects_under(t: &T, prefix: &str) -> Vec<String> {
    t.w.clients
        .s3
        .list_objects_v2()
        .bucket(t.app.attachments_bucket.clone())
        .prefix(prefix)
        .send()
        .await
        .expect("list")
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn deleting_a_lead_deletes_every_item_under_it_and_its_objects() {
    let t = setup().await;
    let (tenant, owner) = workspace(&t, "delete-owner").await;
    let form = create_form(&t, &owner, contact_form()).await;
    let lead = submit(
        &t,
        &form,
        json!({"email": "gone@example.com", "message": "one"}),
    )
    .await["lead_id"]
        .as_str()
        .unwrap()
        .to_string();
    submit(
        &t,
        &form,
        json!({"email": "gone@example.com", "message": "two"}),
    )
    .await;
    let kept = submit(&t, &form, json!({"email": "kept@example.com"})).await["lead_id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v1/leads/{lead}");
    for text in ["first", "second"] {
        assert_eq!(
            call(
                &t,
                &owner,
                "POST",
                &format!("{path}/notes"),
                Some(json!({"text": text}))
            )
            .await
            .status,
            201
        );
    }
    assert_eq!(
        call(
            &t,
            &owner,
            "PATCH",
            &path,
            Some(json!({"version": 1, "stage": "won"}))
        )
        .await
        .status,
        200
    );

    let lead_id = LeadId::parse(&lead).unwrap();
    let prefix = shared_core::keys::lead_objects_prefix(&tenant, &lead_id);
    let kept_prefix =
        shared_core::keys::lead_objects_prefix(&tenant, &LeadId::parse(&kept).unwrap());
    for i in 0..3 {
        put_object(&t, &format!("{prefix}at-{i}")).await;
    }
    put_object(&t, &format!("{kept_prefix}at-0")).await;
    let detail = get(&t, &owner, &path).await;
    assert_eq!(detail.body["submissions"].as_array().unwrap().len(), 2);
    let pk = format!("TENANT#{tenant}#LEAD#{lead}");
    let under = |items: Vec<Item>| {
        items
            .iter()
            .filter(|it| s(it, "pk") == Some(pk.as_str()))
            .count()
    };
    assert_eq!(
        under(t.w.scan("LeadsTable").await),
        1 + 2 + 2 + 1 + 3,
        "the lead, 2 submissions, 2 notes, 1 stage change, 3 audit entries"
    );

    let r = call(&t, &owner, "DELETE", &path, None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(under(t.w.scan("LeadsTable").await), 0);
    assert!(objects_under(&t, &prefix).await.is_empty());
    assert_eq!(
        objects_under(&t, &kept_prefix).await.len(),
        1,
        "another lead's files stay"
    );
    assert_eq!(get(&t, &owner, &path).await.status, 404);
    assert_eq!(call(&t, &owner, "DELETE", &path, None).await.status, 404);
    assert_eq!(
        get(&t, &owner, &format!("/v1/leads/{kept}")).await.status,
        200
    );
}

#[tokio::test]
async fn deleting_under_a_prefix_pages_through_more_than_a_thousand_objects() {
    let t = setup().await;
    let tenant = TenantId::parse("tn-many").unwrap();
    let prefix =
        shared_core::keys::lead_objects_prefix(&tenant, &LeadId::parse("ld-many").unwrap());
    let mut puts = tokio::task::JoinSet::new();
    for i in 0..1005 {
        let s3 = t.w.clients.s3.clone();
        let bucket = t.app.attachments_bucket.clone();
        let key = format!("{prefix}{i:04}");
        puts.spawn(async move {
            s3.put_object()
                .bucket(bucket)
                .key(key)
                .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
                .send()
                .await
                .expect("put");
        });
        if puts.len() >= 50 {
            puts.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(r) = puts.join_next().await {
        r.unwrap();
    }
    let deleted =
        shared_core::s3::delete_prefix(&t.w.clients.s3, &t.app.attachments_bucket, &prefix)
            .await
            .unwrap();
    assert_eq!(deleted, 1005);
    assert!(objects_under(&t, &prefix).await.is_empty());
    assert!(
        shared_core::s3::delete_prefix(
            &t.w.clients.s3,
            &t.app.attachments_bucket,
            "tenants/tn-many/leads/ld-many"
        )
        .await
        .is_err(),
        "a prefix must end with /"
    );
    assert!(
        shared_core::s3::delete_prefix(&t.w.clients.s3, &t.app.attachments_bucket, "")
            .await
            .is_err()
    );
}

/// Puts the lead under legal hold as the operators' tools do (item attribute + registry).
async fn hold(t: &T, tenant: &TenantId, lead: &str, on: bool) {
    use shared_privacy::legal_holds::{set_legal_hold, HeldItem, HoldKind};
    let held = HeldItem {
        kind: HoldKind::Lead,
        key: shared_core::keys::lead(tenant, &LeadId::parse(lead).unwrap()),
    };
    let found = set_legal_hold(
        &t.w.clients.dynamo,
        &t.w.table("LeadsTable"),
        &t.w.table("OpsTable"),
        &held,
        on,
        t.w.clock.now(),
    )
    .await
    .expect("set legal hold");
    assert!(found, "the lead exists");
}

#[tokio::test]
async fn a_lead_under_legal_hold_refuses_delete_edit_and_note_removal() {
    let t = setup().await;
    let (tenant, owner) = workspace(&t, "hold-owner").await;
    let form = create_form(&t, &owner, contact_form()).await;
    let lead = submit(&t, &form, json!({"email": "held@example.com"})).await["lead_id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v1/leads/{lead}");
    let note = call(
        &t,
        &owner,
        "POST",
        &format!("{path}/notes"),
        Some(json!({"text": "before the hold"})),
    )
    .await;
    assert_eq!(note.status, 201, "{}", note.body);
    let note_id = note.body["id"].as_str().unwrap().to_string();
    let prefix = shared_core::keys::lead_objects_prefix(&tenant, &LeadId::parse(&lead).unwrap());
    put_object(&t, &format!("{prefix}evidence.pdf")).await;
    hold(&t, &tenant, &lead, true).await;
    let before = t.w.scan("LeadsTable").await.len();

    for (method, route, body) in [
        ("DELETE", path.clone(), None),
        (
            "PATCH",
            path.clone(),
            Some(json!({"version": 1, "name": "Changed"})),
        ),
        (
            "PATCH",
            path.clone(),
            Some(json!({"version": 1, "stage": "won"})),
        ),
        ("DELETE", format!("{path}/notes/{note_id}"), None),
    ] {
        let r = call(&t, &owner, method, &route, body).await;
        assert_eq!(r.status, 409, "{method} {route}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "legal_hold", "{method} {route}");
    }
    assert_eq!(
        t.w.scan("LeadsTable").await.len(),
        before,
        "nothing changed"
    );
    assert_eq!(objects_under(&t, &prefix).await.len(), 1, "the files stay");
    let after = get(&t, &owner, &path).await;
    assert_eq!(after.status, 200);
    assert_eq!(
        after.body["legal_hold"],
        json!(true),
        "the team sees the hold"
    );
    assert_eq!(after.body["version"], json!(1));
    assert_eq!(after.body["name"], Value::Null);

    // Notes may still be added: a hold keeps evidence, it does not freeze the team's work.
    let added = call(
        &t,
        &owner,
        "POST",
        &format!("{path}/notes"),
        Some(json!({"text": "during the hold"})),
    )
    .await;
    assert_eq!(added.status, 201, "{}", added.body);

    // Once the hold is cleared, the lead can be deleted again.
    hold(&t, &tenant, &lead, false).await;
    let r = call(&t, &owner, "DELETE", &path, None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(objects_under(&t, &prefix).await.is_empty());
}
