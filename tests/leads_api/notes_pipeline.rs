//! Notes and the pipeline.

use super::*;

#[tokio::test]
async fn notes_are_added_listed_newest_first_and_deleted_by_their_author_or_an_admin() {
    let t = setup().await;
    let (tenant, owner) = workspace(&t, "notes-owner").await;
    let alice = member(&t, &tenant, Role::Member, "notes-alice").await;
    let bob = member(&t, &tenant, Role::Member, "notes-bob").await;
    let admin = member(&t, &tenant, Role::Admin, "notes-admin").await;
    let ids = seed_leads(&t, &tenant, 1, one_seed("notes")).await;
    let notes = format!("/v1/leads/{}/notes", ids[0]);

    let mut created = Vec::new();
    for i in 0..3 {
        t.w.clock.advance(Duration::seconds(1));
        let r = call(
            &t,
            &alice,
            "POST",
            &notes,
            Some(json!({"text": format!("  call back #{i}\nsoon ")})),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.body["text"], json!(format!("call back #{i}\nsoon")));
        assert_eq!(r.body["author_user_id"], json!(alice.id()));
        created.push(r.str("id"));
    }
    let page = get(&t, &owner, &format!("{notes}?limit=2")).await;
    let rest = get(
        &t,
        &owner,
        &format!("{notes}?limit=2&cursor={}", page.cursor().unwrap()),
    )
    .await;
    let listed: Vec<String> = page.ids().into_iter().chain(rest.ids()).collect();
    let mut newest_first = created.clone();
    newest_first.reverse();
    assert_eq!(listed, newest_first);

    for (body, code) in [
        (json!({"text": "   "}), "invalid_fields"),
        (json!({"text": "x".repeat(5001)}), "invalid_fields"),
        (json!({"body": "x"}), "invalid_body"),
    ] {
        let r = call(&t, &alice, "POST", &notes, Some(body)).await;
        assert_eq!((r.status, r.code()), (400, code));
    }

    let r = call(&t, &bob, "DELETE", &format!("{notes}/{}", created[0]), None).await;
    assert_eq!((r.status, r.code()), (403, "not_note_author"));
    assert_eq!(
        call(
            &t,
            &alice,
            "DELETE",
            &format!("{notes}/{}", created[0]),
            None
        )
        .await
        .status,
        204
    );
    assert_eq!(
        call(
            &t,
            &admin,
            "DELETE",
            &format!("{notes}/{}", created[1]),
            None
        )
        .await
        .status,
        204
    );
    let r = call(
        &t,
        &alice,
        "DELETE",
        &format!("{notes}/{}", created[1]),
        None,
    )
    .await;
    assert_eq!((r.status, r.code()), (404, "note_not_found"));
    assert_eq!(get(&t, &owner, &notes).await.ids(), [created[2].clone()]);
    let audit: Vec<Value> = get(&t, &owner, &format!("/v1/leads/{}", ids[0])).await.body["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].clone())
        .collect();
    assert_eq!(
        audit.iter().filter(|a| **a == json!("note.added")).count(),
        3
    );
    assert_eq!(
        audit
            .iter()
            .filter(|a| **a == json!("note.deleted"))
            .count(),
        2
    );
    assert_eq!(
        get(&t, &owner, "/v1/leads/ld-nobody/notes").await.status,
        404
    );
}

#[tokio::test]
async fn the_pipeline_defaults_is_replaced_and_keeps_stages_that_hold_leads() {
    let t = setup().await;
    let (tenant, owner) = workspace(&t, "pipe-owner").await;
    let r = get(&t, &owner, "/v1/pipeline").await;
    let ids: Vec<&str> = r.body["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["new", "contacted", "qualified", "won", "lost"]);

    let leads = seed_leads(
        &t,
        &tenant,
        1,
        Seed {
            stage: "qualified",
            ..one_seed("pipe")
        },
    )
    .await;
    let r = call(&t, &owner, "PUT", "/v1/pipeline", Some(json!({"stages": [{"id": "new"}, {"id": "demo_booked", "name": "Demo booked"}, {"id": "won"}]}))).await;
    assert_eq!((r.status, r.code()), (409, "stage_in_use"));
    let r = call(&t, &owner, "PUT", "/v1/pipeline", Some(json!({"stages": [{"id": "new"}, {"id": "qualified", "name": "Ready"}, {"id": "demo_booked", "name": "Demo booked"}, {"id": "won"}]}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(get(&t, &owner, "/v1/pipeline").await.body, r.body);
    assert_eq!(r.body["stages"][1]["name"], json!("Ready"));

    let path = format!("/v1/leads/{}", leads[0]);
    let r = call(
        &t,
        &owner,
        "PATCH",
        &path,
        Some(json!({"version": 1, "stage": "demo_booked"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call(
        &t,
        &owner,
        "PATCH",
        &path,
        Some(json!({"version": 2, "stage": "contacted"})),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "invalid_fields"),
        "contacted was removed"
    );

    for bad in [
        json!({"stages": []}),
        json!({"stages": [{"id": "won"}, {"id": "new"}]}),
        json!({"stages": [{"id": "new"}, {"id": "new"}]}),
        json!({"stages": [{"id": "new"}, {"id": "Bad Id"}]}),
    ] {
        let r = call(&t, &owner, "PUT", "/v1/pipeline", Some(bad.clone())).await;
        assert_eq!((r.status, r.code()), (400, "invalid_fields"), "{bad}");
    }
}
