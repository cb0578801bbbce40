//! Forms: defaults, the embed snippet, special categories, versioned consents, listing and retirement.

use super::*;

#[tokio::test]
async fn three_keys_make_a_working_contact_form_with_an_embed_snippet() {
    let t = setup().await;
    let (_tenant, owner) = workspace(&t, "forms-owner").await;

    let r = call(&t, &owner, "POST", "/v1/forms", Some(contact_form())).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.str("id");
    assert!(id.starts_with("fm-"), "{id}");
    let fields: Vec<(String, String, bool)> = r.body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().into(),
                f["type"].as_str().unwrap().into(),
                f["required"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        fields,
        [
            ("email".into(), "email".into(), true),
            ("name".into(), "text".into(), false),
            ("message".into(), "long_text".into(), false)
        ]
    );
    assert_eq!(r.body["enabled"], json!(true));
    assert_eq!(r.body["honeypot_field"], json!("_gotcha"));
    let submit_url = format!("http://127.0.0.1:9000/v1/forms/{id}/submissions");
    assert_eq!(r.str("submit_url"), submit_url);
    let html = r.str("embed_html");
    assert!(
        html.contains(&format!(r#"action="{submit_url}" method="post""#)),
        "{html}"
    );
    assert!(html.contains(r#"name="email" type="email""#));
    assert!(html.contains(r#"<textarea id="lf-"#));
    assert!(html.contains(r#"name="_gotcha" tabindex="-1""#));
    assert!(html.contains("<script>") && html.contains("fetch(form.action"));

    // It works: lead intake accepts a submission to it, and the lead is the tenant's.
    let b = submit(
        &t,
        &id,
        json!({"email": "visitor@example.com", "name": "Vi Sitor", "message": "hi"}),
    )
    .await;
    let lead = get(
        &t,
        &owner,
        &format!("/v1/leads/{}", b["lead_id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(lead.status, 200, "{}", lead.body);
    assert_eq!(lead.body["source_form_id"], json!(id));
    assert_eq!(
        lead.body["submissions"][0]["answers"]["message"],
        json!("hi")
    );

    // Missing the three keys: every one is named.
    let r = call(&t, &owner, "POST", "/v1/forms", Some(json!({"name": "x"}))).await;
    assert_eq!((r.status, r.code()), (400, "invalid_fields"));
    assert!(r.body["error"]["fields"]["allowed_origins"].is_string());
    assert!(r.body["error"]["fields"]["redirect_url"].is_string());
    let mut insecure = contact_form();
    insecure["redirect_url"] = json!("http://www.example.com/thanks");
    insecure["allowed_origins"] = json!(["https://www.example.com/path"]);
    let r = call(&t, &owner, "POST", "/v1/forms", Some(insecure)).await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["error"]["fields"]["redirect_url"].is_string(),
        "{}",
        r.body
    );
    assert!(
        r.body["error"]["fields"]["allowed_origins[0]"].is_string(),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn special_category_fields_need_a_recorded_legal_basis() {
    let t = setup().await;
    let (_tenant, owner) = workspace(&t, "special-owner").await;
    let mut body = contact_form();
    body["fields"] = json!([
        {"name": "email", "type": "email", "required": true},
        {"name": "condition", "type": "long_text", "special_category": "health"}
    ]);
    let r = call(&t, &owner, "POST", "/v1/forms", Some(body.clone())).await;
    assert_eq!(
        (r.status, r.code()),
        (400, "special_category_needs_legal_basis"),
        "{}",
        r.body
    );

    body["special_category_basis"] = json!("Art. 9(2)(a) GDPR: the patient's explicit consent");
    let r = call(&t, &owner, "POST", "/v1/forms", Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["fields"][1]["special_category"], json!("health"));
    let id = r.str("id");

    // Removing the basis while the field is there is refused too; intake still reads the form.
    let r = call(
        &t,
        &owner,
        "PATCH",
        &format!("/v1/forms/{id}"),
        Some(json!({"special_category_basis": null})),
    )
    .await;
    assert_eq!(r.code(), "special_category_needs_legal_basis");
    submit(
        &t,
        &id,
        json!({"email": "p@example.com", "condition": "asthma"}),
    )
    .await;
}

#[tokio::test]
async fn consent_texts_are_versioned_and_old_versions_stay_resolvable() {
    let t = setup().await;
    let (_tenant, owner) = workspace(&t, "consent-owner").await;
    let mut body = contact_form();
    body["consents"] = json!([{"key": "marketing", "text": "Send me news."}]);
    let id = create_form(&t, &owner, body).await;
    let path = format!("/v1/forms/{id}");

    let b = submit(
        &t,
        &id,
        json!({"email": "early@example.com", "consent_marketing": true}),
    )
    .await;
    let early_lead = b["lead_id"].as_str().unwrap().to_string();

    let r = call(&t, &owner, "PATCH", &path, Some(json!({"consents": [{"key": "marketing", "version": "v1", "text": "Send me news and offers."}]}))).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body["error"]["fields"]["consents[0].version"].is_string());

    let r = call(
        &t,
        &owner,
        "PATCH",
        &path,
        Some(json!({"consents": [{"key": "marketing", "text": "Send me news and offers."}]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["consents"][0]["version"], json!("v2"));
    let history: Vec<(String, String)> = r.body["consent_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["version"].as_str().unwrap().into(),
                h["text"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        history,
        [
            ("v1".into(), "Send me news.".into()),
            ("v2".into(), "Send me news and offers.".into())
        ]
    );

    // The early lead's consent names v1, which the form still resolves.
    let lead = get(&t, &owner, &format!("/v1/leads/{early_lead}")).await;
    assert_eq!(lead.body["consent_history"][0]["version"], json!("v1"));
    assert_eq!(lead.body["consent_history"][0]["granted"], json!(true));
    let form = get(&t, &owner, &path).await;
    assert!(form.body["consent_history"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["version"] == json!("v1")));
}

#[tokio::test]
async fn forms_are_listed_paged_edited_and_deleted_keeping_their_consent_texts() {
    let t = setup().await;
    let (_tenant, owner) = workspace(&t, "list-owner").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let mut body = contact_form();
        body["name"] = json!(format!("Form {i}"));
        body["consents"] = json!([{"key": "marketing", "text": "News."}]);
        ids.push(create_form(&t, &owner, body).await);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/forms?limit=2&cursor={c}"),
            None => "/v1/forms?limit=2".to_string(),
        };
        let r = get(&t, &owner, &path).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.items().iter().all(|f| f.get("embed_html").is_none()));
        seen.extend(r.ids());
        match r.cursor() {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    seen.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(seen, want);

    let path = format!("/v1/forms/{}", ids[0]);
    let r = call(
        &t,
        &owner,
        "PATCH",
        &path,
        Some(json!({"name": "Renamed", "enabled": false})),
    )
    .await;
    assert_eq!(
        (r.status, r.body["name"].clone(), r.body["enabled"].clone()),
        (200, json!("Renamed"), json!(false))
    );

    let r = call(&t, &owner, "DELETE", &path, None).await;
    assert_eq!(r.status, 204);
    assert_eq!(get(&t, &owner, &path).await.status, 404);
    assert_eq!(call(&t, &owner, "DELETE", &path, None).await.status, 404);
    assert!(!get(&t, &owner, "/v1/forms").await.ids().contains(&ids[0]));
    // Intake refuses it; its record keeps the consent texts as proof.
    let intake = t.w.intake(None);
    let mut e = json_submission(&json!({"email": "late@example.com"}));
    e["rawPath"] = json!(format!("/v1/forms/{}/submissions", ids[0]));
    e["pathParameters"]["formId"] = json!(ids[0]);
    assert_eq!(
        lead_intake::handle(&intake, request(&e)).await.status(),
        403
    );
    let item =
        t.w.scan("TenantsTable")
            .await
            .into_iter()
            .find(|it| s(it, "form_id") == Some(ids[0].as_str()))
            .unwrap();
    assert!(s(&item, "deleted_at").is_some());
    assert!(s(&item, "consent_history").unwrap().contains("News."));
}
