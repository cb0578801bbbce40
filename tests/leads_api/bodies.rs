//! Bodies that are not UTF-8.

use super::*;

/// Every route that reads a body answers one that is not UTF-8 (base64-encoded by API Gateway)
/// with a 4xx JSON error, whatever the content type, and stores nothing.
#[tokio::test]
async fn bodies_that_are_not_utf8_are_4xx_on_every_route_and_store_nothing() {
    let t = setup().await;
    let (tenant, owner) = workspace(&t, "utf8-owner").await;
    let form = create_form(&t, &owner, contact_form()).await;
    let lead = seed_leads(&t, &tenant, 1, one_seed("utf8")).await.remove(0);
    let before = t.w.snapshot().await;
    // Routes that read no body (a body there is ignored, as API Gateway would pass it).
    let bodyless = ["delete_form", "delete_lead", "delete_note"];
    for name in bodyless {
        assert!(
            leads_api::routes::ROUTES.iter().any(|r| r.name == name),
            "{name}"
        );
    }
    let mut calls = 0;
    for route in leads_api::routes::ROUTES
        .iter()
        .filter(|r| r.method != "GET" && !bodyless.contains(&r.name))
    {
        let path = concrete_path(route.path, &[("formId", &form), ("leadId", &lead)]);
        for bytes in NOT_UTF8_BODIES {
            for ct in BODY_CONTENT_TYPES {
                let mut e = http_event(route.method, &path, Some(&owner.token));
                e["headers"]["if-match"] = json!("\"1\"");
                let resp = leads_api::handle(&t.app, with_base64_body(e, bytes, ct)).await;
                assert_json_client_error(&resp, &format!("{} {path} {ct} {bytes:?}", route.method));
                calls += 1;
            }
        }
    }
    assert!(calls > 0);
    assert_eq!(t.w.snapshot().await, before, "nothing stored");
}
