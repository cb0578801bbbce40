//! API keys (issue 17): created, listed and revoked through the auth function, used on the
//! leads API through the same extractor as access tokens: a key lists leads and a revoked,
//! expired or tampered one gets 401; tenant isolation; roles; the secret is neither stored nor
//! logged; a revocation holds against requests running at the same time.

use super::*;
use shared_accounts::auth::api_key;
use shared_core::dynamo::Item;

/// A call to the auth function with `bearer` (an access token or a key).
async fn auth_call(t: &T, bearer: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
    let resp = auth::handle(
        &t.auth,
        api_event(method, path, body.as_ref(), Some(bearer)),
    )
    .await;
    Reply {
        status: resp.status().as_u16(),
        body: response_json(&resp),
        etag: None,
    }
}

/// Records that `who`'s session re-entered the password now (`POST /v1/auth/step-up`, which
/// these members, holding no password, cannot call): creating a key needs it.
async fn stepped_up(t: &T, who: &Member) {
    let claims = t
        .app
        .verifier
        .verify(&who.token, t.w.clock.now().unix_timestamp())
        .expect("token");
    let sid = SessionId::parse(&claims.sid).unwrap();
    assert!(t
        .auth
        .store
        .mark_step_up(&sid, t.w.clock.now())
        .await
        .unwrap());
}

/// A key created by `creator` with `body`; its reply (201) with the key in `key`.
async fn create_key(t: &T, creator: &Member, body: Value) -> Reply {
    stepped_up(t, creator).await;
    let r = auth_call(t, &creator.token, "POST", "/v1/api-keys", Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r
}

/// Whoever holds the key, as a caller of the leads API.
fn holder(creator: &Member, key: &str) -> Member {
    Member {
        user: creator.user.clone(),
        token: key.to_string(),
    }
}

/// The stored item of a key.
async fn key_item(t: &T, tenant: &TenantId, id: &str) -> Option<Item> {
    let k = shared_core::keys::api_key(tenant, &shared_core::domain::ApiKeyId::parse(id).unwrap());
    t.w.clients
        .dynamo
        .get_item()
        .table_name(t.w.table("TenantsTable"))
        .key("pk", av_s(&k.pk))
        .key("sk", av_s(&k.sk))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

#[tokio::test]
async fn an_api_key_lists_leads_and_a_revoked_one_gets_401() {
    let t = setup().await;
    let (tenant, owner) = workspace(&t, "keys-owner").await;
    let leads = seed_leads(&t, &tenant, 3, one_seed("keyed")).await;
    // A stolen access token alone cannot mint a long-lived key: the password re-entered first.
    let body = json!({"name": "CRM sync", "role": "member"});
    let r = auth_call(&t, &owner.token, "POST", "/v1/api-keys", Some(body)).await;
    assert_eq!(
        (r.status, r.code()),
        (403, "step_up_required"),
        "{}",
        r.body
    );
    let r = create_key(
        &t,
        &owner,
        json!({"name": "CRM sync", "role": "member", "expires_in_days": 30}),
    )
    .await;
    let key = r.str("key");
    let id = r.str("id");
    assert!(key.starts_with("lmk_live_"), "{key}");
    assert_eq!(r.body["role"], "member");
    assert_eq!(r.body["prefix"], "lmk_live_");
    assert_eq!(
        r.str("expires_at"),
        rfc3339(t.w.clock.now() + Duration::days(30))
    );
    let by_key = holder(&owner, &key);

    let r = get(&t, &by_key, "/v1/leads").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.ids(), leads);
    // A member's write goes through too (its role permits it): no session needed.
    let r = call(
        &t,
        &by_key,
        "POST",
        &format!("/v1/leads/{}/notes", leads[0]),
        Some(json!({"text": "from the CRM"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // The lead's audit trail names the creator and the key (its id).
    let r = get(&t, &owner, &format!("/v1/leads/{}", leads[0])).await;
    let audit = r.body["audit"].as_array().expect("audit").clone();
    assert_eq!(audit.len(), 1, "{}", r.body);
    assert_eq!(audit[0]["action"], "note.added");
    assert_eq!(audit[0]["actor_user_id"], owner.id().as_str());
    assert_eq!(audit[0]["api_key_id"], id.as_str());

    // Listed without the key, with its use recorded.
    let r = auth_call(&t, &owner.token, "GET", "/v1/api-keys", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let items = r.items();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    assert_eq!(items[0]["name"], "CRM sync");
    assert_eq!(items[0]["created_by"], owner.id().as_str());
    assert_eq!(items[0]["last_used_at"], rfc3339(t.w.clock.now()).as_str());
    assert!(items[0]["revoked_at"].is_null());
    assert!(items[0].get("key").is_none(), "{}", r.body);
    assert!(!r.body.to_string().contains(key.rsplit('.').next().unwrap()));

    let r = auth_call(
        &t,
        &owner.token,
        "DELETE",
        &format!("/v1/api-keys/{id}"),
        None,
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = get(&t, &by_key, "/v1/leads").await;
    assert_eq!((r.status, r.code()), (401, "unauthorized"), "{}", r.body);
    // Revoking again changes nothing; the listing shows when.
    let r = auth_call(
        &t,
        &owner.token,
        "DELETE",
        &format!("/v1/api-keys/{id}"),
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    let r = auth_call(&t, &owner.token, "GET", "/v1/api-keys", None).await;
    assert_eq!(
        r.items()[0]["revoked_at"],
        rfc3339(t.w.clock.now()).as_str()
    );
}

#[tokio::test]
async fn an_expired_or_tampered_key_gets_401() {
    let t = setup().await;
    let (tenant, owner) = workspace(&t, "keys-expiry").await;
    seed_leads(&t, &tenant, 1, one_seed("expiring")).await;
    let key = create_key(
        &t,
        &owner,
        json!({"name": "short", "role": "viewer", "expires_in_days": 1}),
    )
    .await
    .str("key");
    assert_eq!(
        get(&t, &holder(&owner, &key), "/v1/leads").await.status,
        200
    );

    // The secret changed in one character; the id part changed (another key's id).
    let mut tampered = key.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let (public, secret) = key.rsplit_once('.').unwrap();
    let other_id = format!("{}x.{secret}", public);
    for bad in [
        tampered,
        other_id,
        format!("{key}x"),
        "lmk_live_".to_string(),
    ] {
        let r = get(&t, &holder(&owner, &bad), "/v1/leads").await;
        assert_eq!((r.status, r.code()), (401, "unauthorized"), "{bad}");
    }

    t.w.clock.advance(Duration::days(1));
    let r = get(&t, &holder(&owner, &key), "/v1/leads").await;
    assert_eq!((r.status, r.code()), (401, "unauthorized"));
}

#[tokio::test]
async fn a_key_of_one_tenant_never_reads_another() {
    let t = setup().await;
    let (tenant_a, owner_a) = workspace(&t, "keys-a").await;
    let (tenant_b, owner_b) = workspace(&t, "keys-b").await;
    let a_leads = seed_leads(&t, &tenant_a, 2, one_seed("tenant-a")).await;
    let b_leads = seed_leads(&t, &tenant_b, 2, one_seed("tenant-b")).await;
    let r = create_key(&t, &owner_a, json!({"name": "a", "role": "admin"})).await;
    let (key_a, id_a) = (r.str("key"), r.str("id"));
    let by_a = holder(&owner_a, &key_a);

    assert_eq!(get(&t, &by_a, "/v1/leads").await.ids(), a_leads);
    let r = get(&t, &by_a, &format!("/v1/leads/{}", b_leads[0])).await;
    assert_eq!((r.status, r.code()), (404, "lead_not_found"), "{}", r.body);

    // B's owner sees no key of A's and cannot revoke it.
    let r = auth_call(&t, &owner_b.token, "GET", "/v1/api-keys", None).await;
    assert!(r.items().is_empty(), "{}", r.body);
    let r = auth_call(
        &t,
        &owner_b.token,
        "DELETE",
        &format!("/v1/api-keys/{id_a}"),
        None,
    )
    .await;
    assert_eq!((r.status, r.code()), (404, "api_key_not_found"));
    assert_eq!(get(&t, &by_a, "/v1/leads").await.status, 200);

    // A's key presented as B's (the tenant part rewritten): no such key under B.
    let forged = key_a.replacen(tenant_a.as_str(), tenant_b.as_str(), 1);
    let r = get(&t, &holder(&owner_b, &forged), "/v1/leads").await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn a_key_role_is_at_most_its_creators_and_a_viewer_key_cannot_write() {
    let t = setup().await;
    let (tenant, owner) = workspace(&t, "keys-roles").await;
    let admin = member(&t, &tenant, Role::Admin, "keys-admin").await;
    let plain = member(&t, &tenant, Role::Member, "keys-member").await;
    let leads = seed_leads(&t, &tenant, 1, one_seed("roles")).await;
    stepped_up(&t, &admin).await;
    stepped_up(&t, &owner).await;
    stepped_up(&t, &plain).await;

    for role in ["owner", "billing"] {
        let r = auth_call(
            &t,
            &admin.token,
            "POST",
            "/v1/api-keys",
            Some(json!({"name": "x", "role": role})),
        )
        .await;
        assert_eq!(
            (r.status, r.code()),
            (403, "api_key_role_too_high"),
            "{role}"
        );
    }
    // Only owners and admins manage keys.
    let r = auth_call(
        &t,
        &plain.token,
        "POST",
        "/v1/api-keys",
        Some(json!({"name": "x", "role": "viewer"})),
    )
    .await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    // Bad input is a 400 naming the field.
    for (body, field) in [
        (json!({"name": "", "role": "viewer"}), "name"),
        (json!({"name": "x", "role": "root"}), "role"),
        (
            json!({"name": "x", "role": "viewer", "expires_in_days": 400}),
            "expires_in_days",
        ),
        (
            json!({"name": "x", "role": "viewer", "expires_at": "tomorrow"}),
            "expires_at",
        ),
        (
            json!({"name": "x", "role": "viewer", "expires_at": "2020-01-01T00:00:00Z"}),
            "expires_at",
        ),
    ] {
        let r = auth_call(&t, &owner.token, "POST", "/v1/api-keys", Some(body)).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.body["error"]["fields"][field].is_string(), "{}", r.body);
    }

    let viewer_key = create_key(&t, &admin, json!({"name": "ro", "role": "viewer"}))
        .await
        .str("key");
    let by_viewer = holder(&admin, &viewer_key);
    assert_eq!(get(&t, &by_viewer, "/v1/leads").await.status, 200);
    let r = call(
        &t,
        &by_viewer,
        "PATCH",
        &format!("/v1/leads/{}", leads[0]),
        Some(json!({"stage": "contacted"})),
    )
    .await;
    assert_eq!((r.status, r.code()), (403, "forbidden"), "{}", r.body);
    // The team may be read with a key; nothing about the people or the keys may be changed.
    assert_eq!(
        auth_call(&t, &viewer_key, "GET", "/v1/team", None)
            .await
            .status,
        200
    );
    let admin_key = create_key(&t, &owner, json!({"name": "adm", "role": "admin"}))
        .await
        .str("key");
    for (method, path, body) in [
        (
            "POST",
            "/v1/api-keys",
            Some(json!({"name": "y", "role": "viewer"})),
        ),
        ("GET", "/v1/api-keys", None),
        ("GET", "/v1/me", None),
        ("POST", "/v1/auth/logout", None),
        ("GET", "/v1/auth/sessions", None),
        (
            "POST",
            "/v1/me/password",
            Some(json!({"current_password": "x", "new_password": "y"})),
        ),
        (
            "POST",
            "/v1/team/invitations",
            Some(json!({"email": "n@example.com", "role": "viewer"})),
        ),
    ] {
        let r = auth_call(&t, &admin_key, method, path, body).await;
        assert_eq!(
            (r.status, r.code()),
            (403, "api_key_not_allowed"),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn a_removed_creator_or_a_closed_workspace_ends_the_key() {
    let t = setup().await;
    let (tenant, owner) = workspace(&t, "keys-removal").await;
    let admin = member(&t, &tenant, Role::Admin, "keys-leaver").await;
    seed_leads(&t, &tenant, 1, one_seed("removal")).await;
    let admins = create_key(&t, &admin, json!({"name": "leaver's", "role": "admin"}))
        .await
        .str("key");
    let owners = create_key(&t, &owner, json!({"name": "owner's", "role": "viewer"}))
        .await
        .str("key");
    assert_eq!(
        get(&t, &holder(&admin, &admins), "/v1/leads").await.status,
        200
    );

    // The creator demoted below the key's role: the key stops working.
    let r = auth_call(
        &t,
        &owner.token,
        "PATCH",
        &format!("/v1/team/{}", admin.id()),
        Some(json!({"role": "viewer"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        get(&t, &holder(&admin, &admins), "/v1/leads").await.status,
        401
    );
    // Removed: likewise.
    let r = auth_call(
        &t,
        &owner.token,
        "DELETE",
        &format!("/v1/team/{}", admin.id()),
        None,
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        get(&t, &holder(&admin, &admins), "/v1/leads").await.status,
        401
    );

    // The workspace closed: no key of it works.
    assert_eq!(
        get(&t, &holder(&owner, &owners), "/v1/leads").await.status,
        200
    );
    let mut closed = Tenant {
        tenant_id: tenant.clone(),
        business_name: "keys-removal Ltd".into(),
        status: TenantStatus::Closed,
        owner_user_id: owner.user.user_id.clone(),
        created_at: t.w.clock.now(),
        closed_at: Some(t.w.clock.now()),
        erase_after: Some(t.w.clock.now() + Duration::days(30)),
    };
    put(&t, "TenantsTable", tenant_item(&closed)).await;
    assert_eq!(
        get(&t, &holder(&owner, &owners), "/v1/leads").await.status,
        401
    );
    closed.status = TenantStatus::Active;
    put(&t, "TenantsTable", tenant_item(&closed)).await;
    assert_eq!(
        get(&t, &holder(&owner, &owners), "/v1/leads").await.status,
        200
    );
}

#[tokio::test]
async fn the_key_is_not_stored_and_never_logged_and_every_use_names_its_id() {
    let t = setup().await;
    let (logs, _capture) = capture_logs();
    let (tenant, owner) = workspace(&t, "keys-secret").await;
    seed_leads(&t, &tenant, 1, one_seed("secret")).await;
    let r = create_key(&t, &owner, json!({"name": "logged?", "role": "viewer"})).await;
    let (key, id) = (r.str("key"), r.str("id"));
    let secret = key.rsplit('.').next().unwrap().to_string();
    assert_eq!(
        get(&t, &holder(&owner, &key), "/v1/leads").await.status,
        200
    );
    let mut tampered = key.clone();
    tampered.pop();
    tampered.push('_');
    assert_eq!(
        get(&t, &holder(&owner, &tampered), "/v1/leads")
            .await
            .status,
        401
    );
    let r = auth_call(
        &t,
        &owner.token,
        "DELETE",
        &format!("/v1/api-keys/{id}"),
        None,
    )
    .await;
    assert_eq!(r.status, 204);

    // Stored: its hash, never the key or its secret; every attribute declared in the inventory.
    let item = key_item(&t, &tenant, &id).await.expect("the key's item");
    assert_eq!(
        item["secret_hash"].as_s().unwrap(),
        &api_key::hash(&key),
        "SHA-256 of the key"
    );
    for (name, v) in &item {
        let text = format!("{v:?}");
        assert!(!text.contains(&secret), "{name} holds the secret");
        assert!(
            shared_privacy::inventory::declaration(
                shared_privacy::inventory::Table::Tenants,
                item["sk"].as_s().unwrap(),
                name
            )
            .is_some(),
            "undeclared attribute {name}"
        );
    }
    // The security log names the key by id (creation, revocation), never the key.
    let events: Vec<Item> =
        t.w.scan("SecurityLogTable")
            .await
            .into_iter()
            .filter(|e| {
                e.get("event")
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|e| e.starts_with("api_key_"))
            })
            .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    for e in &events {
        assert!(format!("{e:?}").contains(&id));
        assert!(!format!("{e:?}").contains(&secret));
        for name in e.keys() {
            assert!(
                shared_privacy::inventory::declaration(
                    shared_privacy::inventory::Table::SecurityLog,
                    e["sk"].as_s().unwrap(),
                    name
                )
                .is_some(),
                "undeclared security-log attribute {name}"
            );
        }
    }
    // The request log names the key's id on every use and refusal; the key never.
    assert_logs_hold_without(
        &logs,
        &["api_key_used", "api_key_refused", "wrong_secret", &id],
        &[&key, &secret, &tampered],
    );
}

#[tokio::test]
async fn after_a_revocation_returns_no_request_with_the_key_succeeds() {
    let t = setup().await;
    let (tenant, owner) = workspace(&t, "keys-race").await;
    seed_leads(&t, &tenant, 2, one_seed("race")).await;
    let r = create_key(&t, &owner, json!({"name": "busy", "role": "viewer"})).await;
    let (key, id) = (r.str("key"), r.str("id"));
    let by_key = holder(&owner, &key);
    let burst = || join_all((0..24).map(|_| get(&t, &by_key, "/v1/leads")).collect());

    // Requests in flight while the key is revoked: each answers 200 or 401, nothing else.
    let path = format!("/v1/api-keys/{id}");
    let revoke = auth_call(&t, &owner.token, "DELETE", &path, None);
    let (during, revoked) = tokio::join!(burst(), revoke);
    assert_eq!(revoked.status, 204);
    for r in &during {
        assert!(matches!(r.status, 200 | 401), "{} {}", r.status, r.body);
    }
    // Once the revocation has returned, every request is refused, however many at once.
    for _ in 0..2 {
        let after = burst().await;
        assert!(
            after.iter().all(|r| r.status == 401),
            "{:?}",
            after.iter().map(|r| r.status).collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn a_key_costs_one_read_per_request_and_at_most_one_write_a_minute() {
    let mut t = setup().await;
    let (tenant, owner) = workspace(&t, "keys-cost").await;
    seed_leads(&t, &tenant, 5, one_seed("cost-key")).await;
    let key = create_key(&t, &owner, json!({"name": "meter", "role": "viewer"}))
        .await
        .str("key");
    let meter = t.w.meter();
    t.app = leads_app(&t.w, meter.instrument(&t.w.clients.dynamo)).await;
    let by_key = holder(&owner, &key);

    let mut per_request = Vec::new();
    let base = t.w.clock.now();
    for second in [0, 10, 30, 59, 60, 61] {
        t.w.clock.set(base + Duration::seconds(second));
        meter.reset();
        assert_eq!(get(&t, &by_key, "/v1/leads").await.status, 200);
        let usage = meter.usage(&t.w.clients.dynamo).await.unwrap();
        per_request.push((
            usage.operations.clone(),
            usage.read_units,
            usage.write_units,
        ));
    }
    eprintln!("per request with an API key (operations, read units, write units): {per_request:?}");
    let ops: Vec<Vec<String>> = per_request.iter().map(|p| p.0.clone()).collect();
    let read = |extra: &[&str]| -> Vec<String> {
        let mut v = vec!["BatchGetItem".to_string()];
        v.extend(extra.iter().map(|s| s.to_string()));
        v.push("Query".to_string());
        v
    };
    assert_eq!(
        ops,
        vec![
            read(&["UpdateItem"]), // first use: last_used_at recorded
            read(&[]),
            read(&[]),
            read(&[]),
            read(&["UpdateItem"]), // a minute after the last record
            read(&[]),
        ]
    );
    // An access token costs no read to authenticate.
    meter.reset();
    assert_eq!(get(&t, &owner, "/v1/leads").await.status, 200);
    assert_eq!(
        meter.usage(&t.w.clients.dynamo).await.unwrap().operations,
        ["Query"]
    );
}

/// The DSAR worker is not under test here: nothing is dispatched.
struct NoJobs;

impl shared_privacy::dsar::job::JobDispatcher for NoJobs {
    async fn dispatch(
        &self,
        _: &shared_privacy::dsar::job::DsarJob,
    ) -> Result<(), shared_core::error::AppError> {
        Ok(())
    }
}

/// Each function that authenticates, as its `main.rs` builds it over this world: the status of
/// `GET path` with `bearer` at each.
async fn status_everywhere(t: &T, bearer: &str, lead: &str) -> Vec<(&'static str, u16)> {
    let w = &t.w;
    let env = |f: &str| {
        Env::from_pairs(
            infra::local::local_function_env(&w.template, f, emulator_endpoint()).unwrap(),
        )
    };
    let get = |path: &str| api_event("GET", path, None, Some(bearer));
    let status = |r: lambda_http::Response<lambda_http::Body>| r.status().as_u16();

    let c = lead_transfers::config::Config::from_env(&env("lead-transfers")).unwrap();
    let transfers = lead_transfers::App {
        store: shared_leads::transfers::TransfersStore::new(
            w.clients.dynamo.clone(),
            c.tables.clone(),
        ),
        s3: w.clients.s3.clone(),
        buckets: c.buckets.clone(),
        keys: w.key.clone(),
        verifier: w.token_verifier("lead-transfers").await.unwrap(),
        clock: w.clock.clone(),
        ids: Arc::new(UlidGenerator),
        settings: lead_transfers::config::Settings::default(),
    };
    let c = webhooks::config::Config::from_env(&env("webhooks")).unwrap();
    let hooks = webhooks::App {
        dynamo: w.clients.dynamo.clone(),
        sqs: w.clients.sqs.clone(),
        tenants_table: c.tenants_table.clone(),
        ops_table: c.ops_table.clone(),
        retry_queue_url: c.retry_queue_url.clone(),
        local: c.local.clone(),
        resolve: shared_outbound::address::system_resolver(),
        verifier: w.token_verifier("webhooks").await.unwrap(),
        accounts: shared_accounts::dynamo::AccountStore::new(
            w.clients.dynamo.clone(),
            shared_accounts::dynamo::AccountTables {
                tenants: c.tenants_table.clone(),
                security_log: c.security_log_table.clone(),
                ops: c.ops_table.clone(),
            },
            c.security_log_retention_days,
        ),
        clock: w.clock.clone(),
        ids: Arc::new(UlidGenerator),
    };
    let c = dsar::config::Config::from_env(&env("dsar")).unwrap();
    let privacy = dsar::App {
        store: shared_privacy::dsar::store::DsarStore::new(
            w.clients.dynamo.clone(),
            c.tables.clone(),
        ),
        accounts: shared_accounts::dynamo::AccountStore::new(
            w.clients.dynamo.clone(),
            shared_accounts::dynamo::AccountTables {
                tenants: c.tables.tenants.clone(),
                security_log: String::new(),
                ops: c.tables.ops.clone(),
            },
            0,
        ),
        mailer: w.platform_mailer("dsar").unwrap(),
        dispatcher: NoJobs,
        keys: w.key.clone(),
        verifier: w.token_verifier("dsar").await.unwrap(),
        clock: w.clock.clone(),
        ids: Arc::new(UlidGenerator),
        links: c.links.clone(),
        downloads: dsar::downloads::Downloads {
            s3: w.clients.s3.clone(),
            exports_bucket: c.exports_bucket.clone(),
            attachments_bucket: c.attachments_bucket.clone(),
        },
        settings: c.settings.clone(),
    };
    let billing = w.billing_app().await.unwrap();
    vec![
        (
            "leads-api",
            status(leads_api::handle(&t.app, get("/v1/leads")).await),
        ),
        (
            "lead-transfers",
            status(
                lead_transfers::handle(&transfers, get(&format!("/v1/leads/{lead}/attachments")))
                    .await,
            ),
        ),
        (
            "webhooks",
            status(webhooks::handle(&hooks, get("/v1/webhooks")).await),
        ),
        (
            "dsar",
            status(dsar::handle(&privacy, get("/v1/privacy/requests")).await),
        ),
        (
            "billing-webhook",
            status(billing_webhook::handle(&billing, get("/v1/billing/subscription")).await),
        ),
        ("auth", status(auth::handle(&t.auth, get("/v1/team")).await)),
    ]
}

#[tokio::test]
async fn one_key_works_on_every_function_that_authenticates_until_revoked() {
    let t = setup().await;
    let (tenant, owner) = workspace(&t, "keys-everywhere").await;
    let lead = seed_leads(&t, &tenant, 1, one_seed("everywhere")).await[0].clone();
    let r = create_key(&t, &owner, json!({"name": "all", "role": "owner"})).await;
    let (key, id) = (r.str("key"), r.str("id"));

    let before = status_everywhere(&t, &key, &lead).await;
    assert!(before.iter().all(|(_, s)| *s == 200), "{before:?}");
    let r = auth_call(
        &t,
        &owner.token,
        "DELETE",
        &format!("/v1/api-keys/{id}"),
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    let after = status_everywhere(&t, &key, &lead).await;
    assert!(after.iter().all(|(_, s)| *s == 401), "{after:?}");
}

#[tokio::test]
async fn a_workspace_holds_at_most_100_live_keys() {
    let t = setup().await;
    let (tenant, owner) = workspace(&t, "keys-cap").await;
    let now = t.w.clock.now();
    // 100 live keys, one revoked and one expired (those do not count), written straight.
    for i in 0..102 {
        let k = shared_accounts::auth::api_key::ApiKey {
            key_id: shared_core::domain::ApiKeyId::parse(&format!("ak-cap-{i:03}")).unwrap(),
            tenant_id: tenant.clone(),
            name: format!("key {i}"),
            role: Role::Viewer,
            created_by: owner.user.user_id.clone(),
            created_at: now - Duration::days(2),
            expires_at: if i == 101 {
                now
            } else {
                now + Duration::days(1)
            },
            last_used_at: None,
            revoked_at: (i == 100).then_some(now),
        };
        put(
            &t,
            "TenantsTable",
            shared_accounts::api_keys::api_key_item(&k, "0"),
        )
        .await;
    }
    stepped_up(&t, &owner).await;
    let body = json!({"name": "one too many", "role": "viewer"});
    let r = auth_call(&t, &owner.token, "POST", "/v1/api-keys", Some(body.clone())).await;
    assert_eq!(
        (r.status, r.code()),
        (409, "api_key_limit_reached"),
        "{}",
        r.body
    );
    let r = auth_call(&t, &owner.token, "DELETE", "/v1/api-keys/ak-cap-000", None).await;
    assert_eq!(r.status, 204);
    create_key(&t, &owner, body.clone()).await;
    // Two places freed, eight creations at once: at most two keys are made, never more.
    for id in ["ak-cap-001", "ak-cap-002"] {
        let path = format!("/v1/api-keys/{id}");
        assert_eq!(
            auth_call(&t, &owner.token, "DELETE", &path, None)
                .await
                .status,
            204
        );
    }
    let racing = join_all(
        (0..8)
            .map(|_| auth_call(&t, &owner.token, "POST", "/v1/api-keys", Some(body.clone())))
            .collect(),
    )
    .await;
    let made = racing.iter().filter(|r| r.status == 201).count();
    assert!(
        racing
            .iter()
            .all(|r| r.status == 201 || (r.status, r.code()) == (409, "api_key_limit_reached")),
        "{:?}",
        racing.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(made <= 2, "{made} keys made for 2 places");
    let live = auth_call(&t, &owner.token, "GET", "/v1/api-keys", None).await;
    let now = t.w.clock.now();
    let live = live.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| {
            k["revoked_at"].is_null()
                && time::OffsetDateTime::parse(
                    k["expires_at"].as_str().unwrap(),
                    &time::format_description::well_known::Rfc3339,
                )
                .unwrap()
                    > now
        })
        .count();
    assert!(live <= 100, "{live} live keys");
}

#[tokio::test]
async fn an_owner_key_is_refused_by_every_auth_route_about_a_person_or_the_keys() {
    let t = setup().await;
    let (_tenant, owner) = workspace(&t, "keys-auth-routes").await;
    let key = create_key(&t, &owner, json!({"name": "owner's", "role": "owner"}))
        .await
        .str("key");
    let mut refused = 0;
    for route in auth::routes::ROUTES.iter().filter(|r| r.access.is_some()) {
        let path = route
            .path
            .replace("{sessionId}", "se-nobody")
            .replace("{userId}", "us-nobody")
            .replace("{apiKeyId}", "ak-nobody");
        let body = (route.method != "GET").then(|| json!({}));
        let r = auth_call(&t, &key, route.method, &path, body).await;
        if auth::routes::API_KEY_ROUTES.contains(&route.name) {
            assert_eq!(r.status, 200, "{} {path}: {}", route.method, r.body);
        } else {
            assert_eq!(
                (r.status, r.code()),
                (403, "api_key_not_allowed"),
                "{} {path}",
                route.method
            );
            refused += 1;
        }
    }
    assert!(refused >= 20, "{refused}");
}
