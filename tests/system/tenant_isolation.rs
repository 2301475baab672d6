//! Tried as an attacker would: grants never exceed the granter, identity providers and
//! their group mappings stay in their organisation, and scoped roles stay in their scope.
//! Every refusal has its status, its audit entry, and changes nothing.

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;
use windlass_core::audit::Environment;
use windlass_core::rbac::{BuiltInRole, Permission, Role, Scope};
use windlass_standins::OidcIssuerStandIn;

use crate::support::Stack;
use crate::tenancy::{
    app_using_secret, audited, caller_holding, cluster_hosting, new_environment, previews_of,
    project_of, role,
};

fn admin() -> Value {
    json!({"type": "built_in", "role": "admin"})
}

#[tokio::test]
async fn a_members_manager_cannot_mint_an_admin_token_or_bind_admin_to_anyone() {
    let stack = Stack::without_worker().await;
    let (org, _) = stack.organization_with_azure_account().await;
    let manager = caller_holding(
        &stack,
        org,
        &role(&[(Permission::MembersManage, Scope::Organization)]),
    )
    .await;
    let tokens = format!("/v1/organizations/{org}/api-tokens");
    let bindings = format!("/v1/organizations/{org}/role-bindings");
    let (_, before) = stack.api.get(&tokens).await;

    let (status, _, problem) = manager
        .post(
            &tokens,
            json!({"name": "escalate", "role": admin(), "expires_in_days": 1}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem:#}");
    assert!(
        problem["type"].as_str().unwrap().ends_with("grant-ceiling"),
        "{problem:#}"
    );
    let attacker = format!("user:{}", Uuid::new_v4().simple());
    let (status, _, _) = manager
        .post(
            &bindings,
            json!({"subject": attacker, "role": admin()}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A narrower custom role is refused the same way: deploying is not the manager's.
    let deployer = json!({"type": "custom", "name": "deployer", "grants": [
        {"permission": "environments_deploy", "scope": {"kind": "organization"}}]});
    let (status, _, _) = manager
        .post(
            &bindings,
            json!({"subject": attacker, "role": deployer}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // What the manager holds it may hand on.
    let (status, _, granted) = manager
        .post(
            &bindings,
            json!({"subject": attacker, "role": {"type": "custom", "name": "helper",
                "grants": [{"permission": "members_manage", "scope": {"kind": "organization"}}]}}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{granted:#}");

    // Nothing else changed: no new token, the only bindings are the creator's and the helper's.
    let (_, after) = stack.api.get(&tokens).await;
    assert_eq!(
        after.as_array().unwrap().len(),
        before.as_array().unwrap().len()
    );
    let (_, listed) = stack.api.get(&bindings).await;
    let subjects: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["subject"] == attacker.as_str())
        .map(|b| b["role"]["name"].as_str().unwrap_or("built-in"))
        .collect();
    assert_eq!(subjects, ["helper"], "{listed:#}");
    let refusals: Vec<Value> = audited(&stack, org, "authz.denied")
        .await
        .into_iter()
        .filter(|e| e["details"]["reason"] == "grant_ceiling")
        .collect();
    assert_eq!(refusals.len(), 3, "every refusal is audited: {refusals:#?}");
    assert!(refusals.iter().all(|e| e["result"] == "denied"));
}

#[tokio::test]
async fn an_oversized_or_malformed_role_is_refused_before_anything_is_bound() {
    let stack = Stack::without_worker().await;
    let (org, _) = stack.organization_with_azure_account().await;
    let (other_org, _) = stack.organization_with_azure_account().await;
    let foreign_project = project_of(&stack, other_org, "foreign").await;
    let bindings = format!("/v1/organizations/{org}/role-bindings");
    let subject = format!("user:{}", Uuid::new_v4().simple());
    let every = |scope: Value| json!([{"permission": "runs_read", "scope": scope}]);
    for (why, role) in [
        (
            "a 17,000-character name",
            json!({"type": "custom", "name": "x".repeat(17_000),
            "grants": every(json!({"kind": "organization"}))}),
        ),
        (
            "no grants",
            json!({"type": "custom", "name": "empty", "grants": []}),
        ),
        (
            "an environment type of no project",
            json!({"type": "custom", "name": "previews",
            "grants": every(json!({"kind": "environment_type", "environment": "preview"}))}),
        ),
        (
            "another organisation's project",
            json!({"type": "custom", "name": "foreign",
            "grants": every(json!({"kind": "project", "id": foreign_project}))}),
        ),
    ] {
        let (status, _, problem) = stack
            .api
            .post(&bindings, json!({"subject": subject, "role": role}), &[])
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{why}: {problem:#}"
        );
    }
    let (status, _, _) = stack
        .api
        .post(
            &bindings,
            json!({"subject": "user:not-a-pseudonym", "role": admin()}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, listed) = stack.api.get(&bindings).await;
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "only the creator: {listed:#}"
    );
    let failures = audited(&stack, org, "access.bind_role").await;
    assert_eq!(
        failures.len(),
        5,
        "every refused attempt is audited: {failures:#?}"
    );
    assert!(failures.iter().all(|e| e["result"] == "failed"));
}

#[tokio::test]
async fn group_mappings_apply_to_tokens_of_their_own_connection_only() {
    let stack = Stack::without_worker().await;
    let (victim, _) = stack.organization_with_azure_account().await;
    let (attacker_org, _) = stack.organization_with_azure_account().await;
    let victim_idp = OidcIssuerStandIn::start(0, "windlass-victim")
        .await
        .unwrap();
    let attacker_idp = OidcIssuerStandIn::start(0, "windlass-attacker")
        .await
        .unwrap();

    let connect = |org: Uuid, idp: &OidcIssuerStandIn, name: &str| {
        json!({"name": name, "issuer": idp.issuer, "audience": idp.audience,
               "jwks_uri": idp.jwks_uri, "_org": org})
    };
    let mut connection_ids = Vec::new();
    for (org, idp, name) in [
        (victim, &victim_idp, "victim-okta"),
        (attacker_org, &attacker_idp, "attacker-idp"),
    ] {
        let mut body = connect(org, idp, name);
        body.as_object_mut().unwrap().remove("_org");
        let (status, _, connection) = stack
            .api
            .post(
                &format!("/v1/organizations/{org}/identity-connections"),
                body,
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{connection:#}");
        let id: Uuid = connection["id"].as_str().unwrap().parse().unwrap();
        let (status, _, mapping) = stack
            .api
            .post(
                &format!("/v1/organizations/{org}/group-mappings"),
                json!({"connection_id": id, "idp_group": "platform-admins", "role": admin()}),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{mapping:#}");
        connection_ids.push(id);
    }
    let runs = |org: Uuid| format!("/v1/organizations/{org}/runs");

    // The victim's own people, in the mapped group, are admins of the victim only.
    let colleague = stack.api.with_token(Some(victim_idp.token(
        "colleague",
        &["platform-admins"],
        600,
    )));
    assert_eq!(colleague.get(&runs(victim)).await.0, StatusCode::OK);
    assert_eq!(
        colleague.get(&runs(attacker_org)).await.0,
        StatusCode::UNAUTHORIZED,
        "a connection's token means nothing in another organisation"
    );

    // The attacker's IdP issues the same group name: it gets the attacker's org only.
    let attacker = stack.api.with_token(Some(attacker_idp.token(
        "mallory",
        &["platform-admins"],
        600,
    )));
    assert_eq!(attacker.get(&runs(attacker_org)).await.0, StatusCode::OK);
    assert_eq!(
        attacker.get(&runs(victim)).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Nor can the attacker forge the victim's issuer: a token claiming it, signed with the
    // attacker's key, fails the victim connection's keys...
    let forged = attacker_idp.token_claiming(
        &victim_idp.issuer,
        &victim_idp.audience,
        "colleague",
        &["platform-admins"],
        600,
    );
    let forger = stack.api.with_token(Some(forged.clone()));
    assert_eq!(forger.get(&runs(victim)).await.0, StatusCode::UNAUTHORIZED);
    // ...and a connection of the attacker's naming the victim's issuer with the attacker's
    // keys yields a person of the attacker's organisation, never the victim's colleague.
    let (status, _, _) = stack
        .api
        .post(
            &format!("/v1/organizations/{attacker_org}/identity-connections"),
            json!({"name": "look-alike", "issuer": victim_idp.issuer,
                   "audience": victim_idp.audience, "jwks_uri": attacker_idp.jwks_uri}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(forger.get(&runs(victim)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        forger.get(&runs(attacker_org)).await.0,
        StatusCode::FORBIDDEN,
        "verified by the look-alike, but no mapping of that connection gives it anything"
    );

    // A member of the victim's group from the victim's IdP who is mapped nowhere else
    // stays a stranger to Windlass's own sign-in routes too.
    let (status, _, _) = colleague
        .post("/v1/organizations", json!({"name": "by-a-connection"}), &[])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Deleting the connection stops its tokens at once.
    let (status, _, _) = stack
        .api
        .delete(&format!(
            "/v1/organizations/{victim}/identity-connections/{}",
            connection_ids[0]
        ))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        colleague.get(&runs(victim)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (_, mappings) = stack
        .api
        .get(&format!("/v1/organizations/{victim}/group-mappings"))
        .await;
    assert_eq!(mappings, json!([]), "its mappings went with it");
}

#[tokio::test]
async fn a_preview_role_stays_in_its_project_previews_and_off_the_production_cluster() {
    let stack = Stack::without_worker().await;
    let (org, account) = stack.organization_with_azure_account().await;
    let shop = project_of(&stack, org, "shop").await;
    let billing = project_of(&stack, org, "billing").await;
    let production =
        cluster_hosting(&stack, org, account, "prod-eu", &[Environment::Production]).await;
    let previews = cluster_hosting(
        &stack,
        org,
        account,
        "previews-eu",
        &[Environment::Preview, Environment::Development],
    )
    .await;
    // The organisation's production database secret, for production environments only.
    let (status, _, _) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/secrets"),
            json!({"name": "prod/database-url", "value": "postgres://prod-only",
                   "scope": {"kind": "environment_type", "project_id": shop,
                             "environment": "production"}}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/secrets"),
            json!({"name": "preview/database-url", "value": "postgres://preview",
                   "scope": {"kind": "environment_type", "project_id": shop,
                             "environment": "preview"}}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let in_previews = previews_of(shop);
    let preview_team = |clusters: Vec<Uuid>| {
        let mut grants = vec![
            (Permission::ProjectsWrite, in_previews.clone()),
            (Permission::ProjectsRead, in_previews.clone()),
            (Permission::EnvironmentsDeploy, in_previews.clone()),
            (Permission::SecretsUse, in_previews.clone()),
        ];
        grants.extend(
            clusters
                .into_iter()
                .map(|id| (Permission::ClustersUse, Scope::Cluster { id })),
        );
        role(&grants)
    };
    let team = caller_holding(&stack, org, &preview_team(vec![previews])).await;
    let environments =
        |project: Uuid| format!("/v1/organizations/{org}/projects/{project}/environments");
    let create = |body: Value, project: Uuid| {
        let team = &team;
        async move { team.post(&environments(project), body, &[]).await }
    };

    // Onto the production cluster: not a cluster the team may use.
    let (status, _, problem) = create(
        new_environment("pr-1", "preview", production, json!([])),
        shop,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem:#}");
    // Even with the cluster granted, a production-only cluster takes no preview.
    let trusted = caller_holding(&stack, org, &preview_team(vec![previews, production])).await;
    let (status, _, problem) = trusted
        .post(
            &environments(shop),
            new_environment("pr-1", "preview", production, json!([])),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem:#}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("production environments only")
    );
    // Previews of another project, or a production environment: outside the grant.
    for (body, project) in [
        (
            new_environment("pr-2", "preview", previews, json!([])),
            billing,
        ),
        (
            new_environment("prod", "production", previews, json!([])),
            shop,
        ),
    ] {
        let (status, _, problem) = create(body, project).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{problem:#}");
    }
    // The production database secret is out of a preview's scope.
    let (status, _, problem) = create(
        new_environment(
            "pr-3",
            "preview",
            previews,
            app_using_secret("web", "prod/database-url"),
        ),
        shop,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem:#}");
    // The cluster's own namespaces and release names are not the team's to take.
    for (namespace, service) in [
        ("windlass", "web"),
        ("kube-system", "web"),
        ("default", "web"),
        ("cert-manager", "web"),
        ("ingress-nginx", "web"),
        ("shop-pr-4", "windlass-agent"),
    ] {
        let mut body = new_environment(
            "pr-4",
            "preview",
            previews,
            json!([{"kind": "container_app", "name": service,
                    "image": "attacker.example/agent:evil", "port": 8080}]),
        );
        body["namespace"] = json!(namespace);
        let (status, _, problem) = create(body, shop).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{namespace}/{service}: {problem:#}"
        );
    }
    let (_, listed) = stack.api.get(&environments(shop)).await;
    assert_eq!(listed, json!([]), "nothing was created");
    let (_, listed) = stack.api.get(&environments(billing)).await;
    assert_eq!(listed, json!([]));

    // What the team may do, it can: a preview on the preview cluster with the preview
    // database.
    let (status, _, created) = create(
        new_environment(
            "pr-5",
            "preview",
            previews,
            app_using_secret("web", "preview/database-url"),
        ),
        shop,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created:#}");
    let environment = created["environment"]["id"].as_str().unwrap().to_owned();
    // Swapping in the production secret afterwards is refused as well.
    let (status, _, _) = team
        .raw(
            reqwest::Method::PUT,
            &format!("/v1/organizations/{org}/environments/{environment}/services"),
            Some("application/json"),
            app_using_secret("web", "prod/database-url")
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, stored) = stack
        .api
        .get(&format!(
            "/v1/organizations/{org}/environments/{environment}"
        ))
        .await;
    assert_eq!(
        stored["services"][0]["secrets"]["DATABASE_URL"], "preview/database-url",
        "unchanged"
    );
    let denied = audited(&stack, org, "authz.denied").await;
    assert!(denied.len() >= 3, "{denied:#?}");
    let failed: Vec<Value> = audited(&stack, org, "environments.create")
        .await
        .into_iter()
        .filter(|e| e["result"] != "success")
        .collect();
    assert!(
        failed.len() >= 8,
        "every refused creation is audited: {failed:#?}"
    );
}

#[tokio::test]
async fn bindings_mappings_and_tokens_are_listed_and_taken_back_but_never_the_last_admin() {
    let stack = Stack::without_worker().await;
    let (org, _) = stack.organization_with_azure_account().await;
    let bindings = format!("/v1/organizations/{org}/role-bindings");
    let (_, listed) = stack.api.get(&bindings).await;
    let creator = listed[0].clone();
    assert_eq!(creator["role"], admin());

    // The organisation cannot lose its last admin.
    let (status, _, problem) = stack
        .api
        .delete(&format!("{bindings}/{}", creator["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem:#}");
    let (status, _, _) = stack
        .api
        .delete(&format!(
            "/v1/organizations/{org}/members/{}",
            creator["subject"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // A member with two roles is removed at once, with both.
    let member = format!("user:{}", Uuid::new_v4().simple());
    for role in [admin(), json!({"type": "built_in", "role": "viewer"})] {
        let (status, _, _) = stack
            .api
            .post(&bindings, json!({"subject": member, "role": role}), &[])
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (_, listed) = stack.api.get(&bindings).await;
    assert_eq!(listed.as_array().unwrap().len(), 3);
    // A manager without admin's grants cannot take an admin away.
    let manager = caller_holding(
        &stack,
        org,
        &role(&[(Permission::MembersManage, Scope::Organization)]),
    )
    .await;
    let (status, _, _) = manager
        .delete(&format!("/v1/organizations/{org}/members/{member}"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = stack
        .api
        .delete(&format!("/v1/organizations/{org}/members/{member}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, listed) = stack.api.get(&bindings).await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed:#}");

    // Tokens: listed without secrets, revoked at once.
    let tokens = format!("/v1/organizations/{org}/api-tokens");
    let (status, _, issued) = stack
        .api
        .post(
            &tokens,
            json!({"name": "ci", "role": {"type": "built_in", "role": "viewer"},
                   "expires_in_days": 1}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let secret = issued["secret"].as_str().unwrap().to_owned();
    let (_, listed) = stack.api.get(&tokens).await;
    assert!(!listed.to_string().contains(&secret), "never the secret");
    assert_eq!(listed[0]["name"], "ci");
    let ci = stack.api.with_token(Some(secret));
    assert_eq!(
        ci.get(&format!("/v1/organizations/{org}/runs")).await.0,
        StatusCode::OK
    );
    let (status, _, _) = stack
        .api
        .post(
            &format!("{tokens}/{}/revoke", issued["id"].as_str().unwrap()),
            Value::Null,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        ci.get(&format!("/v1/organizations/{org}/runs")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (_, listed) = stack.api.get(&tokens).await;
    assert!(listed[0]["revoked_at"].is_string(), "{listed:#}");
    for action in [
        "access.remove_member",
        "access.issue_api_token",
        "access.revoke_api_token",
    ] {
        assert!(!audited(&stack, org, action).await.is_empty(), "{action}");
    }
    let _ = Role::BuiltIn {
        role: BuiltInRole::Viewer,
    };
}

#[tokio::test]
async fn a_binding_stored_before_todays_rules_can_still_be_taken_back() {
    let stack = Stack::without_worker().await;
    let (org, _) = stack.organization_with_azure_account().await;
    // An environment-type grant without a project: what bindings looked like before
    // grants had to name one. It covers nothing now, and must not be stuck forever.
    let legacy = Role::Custom {
        name: "preview-deployer".to_owned(),
        grants: vec![windlass_core::rbac::Grant {
            permission: Permission::EnvironmentsDeploy,
            scope: Scope::EnvironmentType {
                project_id: None,
                environment: Environment::Preview,
            },
        }],
    };
    let subject = format!("user:{}", Uuid::new_v4().simple());
    let binding = stack.store.bind_role(org, &subject, &legacy).await.unwrap();
    // Handing it out again is refused as malformed...
    let bindings = format!("/v1/organizations/{org}/role-bindings");
    let (status, _, refused) = stack
        .api
        .post(
            &bindings,
            json!({"subject": subject, "role": serde_json::to_value(&legacy).unwrap()}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused:#}");
    // ...but taking it back is only the ceiling's business.
    let (status, _, body) = stack
        .api
        .delete(&format!("{bindings}/{}", binding.id))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body:#}");
    let (_, listed) = stack.api.get(&bindings).await;
    assert!(
        !listed.to_string().contains(&subject),
        "the legacy binding is gone: {listed:#}"
    );
    let audit = stack
        .store
        .audit_entries(org, &Default::default())
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "access.delete_role_binding"
                && e.result == windlass_core::audit::AuditResult::Success),
        "{audit:?}"
    );
}
