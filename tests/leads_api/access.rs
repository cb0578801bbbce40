//! Tenant isolation (404, never 403), the role matrix, live sessions, cursors, and bad input.

use super::*;
use shared_accounts::auth::permissions::allows;

#[tokio::test]
async fn every_route_answers_404_for_another_tenants_ids() {
    let t = setup().await;
    let (tenant_a, owner_a) = workspace(&t, "iso-a").await;
    let (_tenant_b, owner_b) = workspace(&t, "iso-b").await;
    let form = create_form(&t, &owner_a, contact_form()).await;
    let b = submit(&t, &form, json!({"email": "isolated@example.com"})).await;
    let lead = b["lead_id"].as_str().unwrap().to_string();
    let note = call(
        &t,
        &owner_a,
        "POST",
        &format!("/v1/leads/{lead}/notes"),
        Some(json!({"text": "A's note"})),
    )
    .await;
    let note = note.str("id");
    // A submission of A's kept in its form's quarantine (a disposable address).
    submit(&t, &form, json!({"email": "bot@mailinator.com"})).await;
    let quarantined = get(&t, &owner_a, &format!("/v1/forms/{form}/quarantine"))
        .await
        .ids()[0]
        .clone();

    let mut checked = 0;
    for route in leads_api::routes::ROUTES {
        if !route.path.contains('{') {
            continue;
        }
        let path = route
            .path
            .replace("{formId}", &form)
            .replace("{leadId}", &lead)
            .replace("{noteId}", &note)
            .replace("{quarantineId}", &quarantined);
        let body = match (route.method, route.name) {
            ("PATCH", "patch_lead") => Some(json!({"version": 1, "name": "Hijacked"})),
            ("PATCH", _) => Some(json!({"name": "Hijacked"})),
            ("POST", _) => Some(json!({"text": "B was here"})),
            _ => None,
        };
        let r = call(&t, &owner_b, route.method, &path, body).await;
        assert_eq!(
            r.status, 404,
            "{} {} by another tenant: {}",
            route.method, path, r.body
        );
        checked += 1;
    }
    assert_eq!(checked, 12);
    // Nor do the tenant-wide routes show A's data to B.
    assert!(get(&t, &owner_b, "/v1/leads").await.items().is_empty());
    assert!(get(&t, &owner_b, "/v1/forms").await.items().is_empty());
    let by_email = get(&t, &owner_b, "/v1/leads?email=isolated@example.com").await;
    assert!(by_email.items().is_empty(), "{}", by_email.body);

    // And A's data is untouched.
    let r = get(&t, &owner_a, &format!("/v1/leads/{lead}")).await;
    assert_eq!(r.body["version"], json!(1));
    assert_eq!(r.body["notes"].as_array().unwrap().len(), 1);
    assert_eq!(
        get(&t, &owner_a, &format!("/v1/forms/{form}")).await.body["name"],
        json!("Contact us")
    );
    assert_eq!(
        get(&t, &owner_a, &format!("/v1/forms/{form}/quarantine"))
            .await
            .ids(),
        [quarantined],
        "A's quarantine is untouched"
    );
    let _ = tenant_a;
}

#[tokio::test]
async fn every_route_answers_403_exactly_when_the_role_lacks_its_permission() {
    let t = setup().await;
    let (tenant, owner) = workspace(&t, "matrix-owner").await;
    let mut members = vec![owner];
    for role in Role::ALL.into_iter().filter(|r| *r != Role::Owner) {
        members.push(member(&t, &tenant, role, &format!("matrix-{}", role.as_str())).await);
    }
    let mut cells = 0;
    for route in leads_api::routes::ROUTES {
        let path = route
            .path
            .replace("{formId}", "fm-nobody")
            .replace("{leadId}", "ld-nobody")
            .replace("{noteId}", "nt-nobody");
        let body = (route.method != "GET" && route.method != "DELETE").then(|| json!({}));
        let r = send(&t, &event(route.method, &path, "", body.as_ref(), None)).await;
        assert_eq!(
            (r.status, r.code()),
            (401, "unauthorized"),
            "{} {} without a token",
            route.method,
            path
        );
        for m in &members {
            let r = call(&t, m, route.method, &path, body.clone()).await;
            let at = format!(
                "{:?} on {} {}: {} {}",
                m.user.role, route.method, path, r.status, r.body
            );
            let forbidden = r.status == 403 && r.code() == "forbidden";
            if allows(m.user.role, route.access) {
                assert!(
                    !forbidden && r.status != 401 && r.status < 500,
                    "allowed, yet {at}"
                );
            } else {
                assert!(forbidden, "not allowed, yet {at}");
            }
            cells += 1;
        }
    }
    assert_eq!(cells, leads_api::routes::ROUTES.len() * Role::ALL.len());

    // A viewer reads everything and writes nothing.
    let viewer = members
        .iter()
        .find(|m| m.user.role == Role::Viewer)
        .unwrap();
    assert_eq!(get(&t, viewer, "/v1/leads").await.status, 200);
    assert_eq!(get(&t, viewer, "/v1/pipeline").await.status, 200);
    assert_eq!(get(&t, viewer, "/v1/forms").await.status, 200);
}

#[tokio::test]
async fn writes_need_a_live_session() {
    let t = setup().await;
    let (_tenant, owner) = workspace(&t, "session-owner").await;
    let ids = seed_leads(&t, &owner.user.tenant_id, 1, one_seed("sess")).await;
    let sid = t
        .w
        .scan("TenantsTable")
        .await
        .into_iter()
        .find(|it| s(it, "user_id") == Some(owner.id().as_str()) && s(it, "sk") == Some("SESSION"))
        .map(|it| s(&it, "session_id").unwrap().to_string())
        .unwrap();
    t.w.clients
        .dynamo
        .update_item()
        .table_name(t.w.table("TenantsTable"))
        .key("pk", av_s(format!("SESSION#{sid}")))
        .key("sk", av_s("SESSION"))
        .update_expression("SET revoked_at = :t")
        .expression_attribute_values(":t", av_s(rfc3339(t.w.clock.now())))
        .send()
        .await
        .unwrap();
    let path = format!("/v1/leads/{}", ids[0]);
    assert_eq!(
        get(&t, &owner, &path).await.status,
        200,
        "reads trust the token"
    );
    let r = call(
        &t,
        &owner,
        "PATCH",
        &path,
        Some(json!({"version": 1, "name": "X"})),
    )
    .await;
    assert_eq!((r.status, r.code()), (401, "session_ended"));
}

/// The access token carries the credential epoch it was issued under, and every write
/// compares it (and the session's) with the user's: after a password reset, a token issued
/// before it cannot write, even through a session whose revocation was lost (the reset
/// committed, the function stopped before ending sessions) — within the token's 15 minutes.
#[tokio::test]
async fn a_token_issued_before_a_password_reset_cannot_write() {
    let t = setup().await;
    let (tenant, owner) = workspace(&t, "reset-owner").await;
    let email_bidx = t.auth.keys.email(&owner.user.email);
    let login = shared_accounts::dynamo::login_item(&email_bidx, &tenant, &owner.user.user_id);
    put(&t, "TenantsTable", login).await;
    let ids = seed_leads(&t, &tenant, 1, one_seed("reset")).await;
    let path = format!("/v1/leads/{}", ids[0]);
    let patch = |version: i64, name: &'static str| {
        call(
            &t,
            &owner,
            "PATCH",
            &path,
            Some(json!({"version": version, "name": name})),
        )
    };
    assert_eq!(
        patch(1, "Renamed").await.status,
        200,
        "the token writes before the reset"
    );

    t.w.reset_password(owner.user.email.as_str(), "Quartz-Meadow-Lantern-77")
        .await;
    let sid = shared_accounts::auth::jwt::VerifyingKeys::from_json(&format!(
        r#"{{"keys":{{"{}":"{}"}}}}"#,
        t.auth.signer.kid(),
        t.auth.signer.public_key()
    ))
    .unwrap()
    .verify(&owner.token, t.w.clock.now().unix_timestamp())
    .unwrap()
    .sid;
    let sid = SessionId::parse(&sid).unwrap();
    t.w.lose_revocation(&sid).await;
    let session = t.auth.store.session(&sid).await.unwrap().unwrap();
    assert!(
        session.is_live(t.w.clock.now()),
        "the session was not ended"
    );

    let r = patch(2, "Written after the reset").await;
    assert_eq!((r.status, r.code()), (401, "session_ended"), "{}", r.body);
    assert_eq!(
        get(&t, &owner, &path).await.body["name"],
        "Renamed",
        "nothing written after the reset"
    );
}

#[tokio::test]
async fn cursors_cannot_be_forged_replayed_in_another_tenant_or_on_another_list() {
    let t = setup().await;
    let (tenant_a, owner_a) = workspace(&t, "cur-a").await;
    let (_b, owner_b) = workspace(&t, "cur-b").await;
    seed_leads(&t, &tenant_a, 3, one_seed("cur")).await;
    let r = get(&t, &owner_a, "/v1/leads?limit=1").await;
    let c = r.cursor().unwrap();
    assert_eq!(
        get(&t, &owner_a, &format!("/v1/leads?limit=1&cursor={c}"))
            .await
            .status,
        200
    );
    for (who, path) in [
        (&owner_b, format!("/v1/leads?limit=1&cursor={c}")),
        (&owner_a, format!("/v1/leads?limit=1&stage=new&cursor={c}")),
        (&owner_a, format!("/v1/forms?cursor={c}")),
        (&owner_a, format!("/v1/leads?cursor={}x", &c[..c.len() - 1])),
        (&owner_a, "/v1/leads?cursor=eyJ0IjoiYSJ9.AAAA".to_string()),
    ] {
        let r = get(&t, who, &path).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "invalid_cursor"),
            "{path}: {}",
            r.body
        );
    }
}

#[tokio::test]
async fn bad_requests_get_4xx_never_5xx() {
    let t = setup().await;
    let (tenant, owner) = workspace(&t, "bad-owner").await;
    let ids = seed_leads(&t, &tenant, 1, one_seed("bad")).await;
    let path = format!("/v1/leads/{}", ids[0]);

    let mut e = event(
        "PATCH",
        &path,
        "",
        Some(&json!({"version": 1})),
        Some(&owner.token),
    );
    e["headers"]["content-type"] = json!("text/plain");
    assert_eq!(send(&t, &e).await.status, 415);
    let mut e = event(
        "POST",
        "/v1/forms",
        "",
        Some(&json!({})),
        Some(&owner.token),
    );
    e["body"] = json!("{not json");
    assert_eq!(send(&t, &e).await.code(), "invalid_body");
    let mut e = event(
        "POST",
        "/v1/forms",
        "",
        Some(&json!({})),
        Some(&owner.token),
    );
    e["body"] = json!(format!("{{\"name\":\"{}\"}}", "x".repeat(70_000)));
    assert_eq!(send(&t, &e).await.status, 413);
    let mut e = event(
        "PATCH",
        &path,
        "",
        Some(&json!({"name": "x"})),
        Some(&owner.token),
    );
    e["headers"]["if-match"] = json!("\"abc\"");
    assert_eq!(send(&t, &e).await.code(), "invalid_if_match");
    let r = call(&t, &owner, "PATCH", &path, Some(json!({"version": "one"}))).await;
    assert_eq!(r.code(), "invalid_body");
    let r = call(
        &t,
        &owner,
        "PATCH",
        &path,
        Some(json!({"version": 1, "email": 5})),
    )
    .await;
    assert_eq!(r.code(), "invalid_body");

    for (method, p, status) in [
        ("GET", "/v1/nowhere", 404),
        ("PUT", "/v1/leads", 405),
        ("POST", "/v1/pipeline", 405),
        ("GET", "/v1/leads/LD%23x", 404),
        ("GET", "/v1/forms/a%2Fb", 404),
        ("DELETE", "/v1/leads/ld-x/notes/NOT!", 404),
        ("GET", "/v1/leads?unknown=1", 400),
    ] {
        let r = call(&t, &owner, method, p, None).await;
        assert_eq!(r.status, status, "{method} {p}: {}", r.body);
    }
    let mut e = event("GET", "/v1/leads", "", None, None);
    e["headers"]["authorization"] = json!("Bearer not.a.token");
    assert_eq!(send(&t, &e).await.status, 401);
}
