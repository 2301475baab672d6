//! Who may call what: each built-in and scoped custom role gets exactly what the RBAC
//! matrix says on every route; API tokens act only in their organisation; refusals are
//! audited. In process: the router with `oneshot` on a SQLite store, runs started on an
//! engine that only journals them (the matrix asks who may, not what a run does). That
//! every route but the health checks needs a caller at all: `router_in_process.rs`.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;
use windlass_api::oidc::pseudonymous_subject;
use windlass_core::audit::Environment;
use windlass_core::rbac::{self, BuiltInRole, Grant, Permission, Role, Scope, Target};

use windlass_test_support::TestApi;
use windlass_test_support::tenancy::role;

/// An Azure access setup of `account`, as a request body.
fn setup_request(account: Uuid) -> Value {
    json!({
        "workflow": "azure_access_setup",
        "cloud_account_id": account,
        "setup_identity_client_id": Uuid::new_v4(),
    })
}

/// The routes of an organisation, the permission each needs, and on what.
fn routes(
    org: Uuid,
    account: Uuid,
    project: Uuid,
) -> Vec<(Method, String, Option<Value>, Permission, Target)> {
    let base = format!("/v1/organizations/{org}");
    let organization_routes = vec![
        (
            Method::GET,
            base.clone(),
            None,
            Permission::OrganizationRead,
        ),
        (
            Method::GET,
            format!("{base}/cloud-accounts"),
            None,
            Permission::CloudAccountsRead,
        ),
        (
            Method::POST,
            format!("{base}/cloud-accounts"),
            Some(json!({"provider": "azure", "tenant_id": Uuid::new_v4(),
                        "external_id": Uuid::new_v4(), "display_name": "matrix"})),
            Permission::CloudAccountsWrite,
        ),
        (
            Method::GET,
            format!("{base}/runs"),
            None,
            Permission::RunsRead,
        ),
        (
            Method::POST,
            format!("{base}/runs"),
            Some(setup_request(account)),
            Permission::RunsStart,
        ),
        (
            Method::GET,
            format!("{base}/runs/{}", Uuid::new_v4()),
            None,
            Permission::RunsRead,
        ),
        (
            Method::GET,
            format!("{base}/runs/{}/log?step=terraform-apply", Uuid::new_v4()),
            None,
            Permission::RunsRead,
        ),
        (
            Method::GET,
            format!("{base}/runs/{}/events", Uuid::new_v4()),
            None,
            Permission::RunsRead,
        ),
        (
            Method::POST,
            format!("{base}/runs/{}/cancel", Uuid::new_v4()),
            Some(json!({})),
            Permission::RunsCancel,
        ),
        (
            Method::GET,
            format!("{base}/audit"),
            None,
            Permission::AuditRead,
        ),
        (
            Method::GET,
            format!("{base}/audit/export"),
            None,
            Permission::AuditRead,
        ),
        (
            Method::POST,
            format!("{base}/role-bindings"),
            Some(
                json!({"subject": format!("user:{}", Uuid::new_v4().simple()),
                       "role": {"type": "custom", "name": "reader",
                                "grants": [{"permission": "runs_read", "scope": {"kind": "all_clusters"}}]}}),
            ),
            Permission::MembersManage,
        ),
        (
            Method::GET,
            format!("{base}/role-bindings"),
            None,
            Permission::MembersManage,
        ),
        (
            Method::PUT,
            format!("{base}/chart-policy"),
            Some(json!({"allow_plain_http": false})),
            Permission::MembersManage,
        ),
        (
            Method::DELETE,
            format!("{base}/role-bindings/{}", Uuid::new_v4()),
            None,
            Permission::MembersManage,
        ),
        (
            Method::DELETE,
            format!("{base}/members/user:{}", Uuid::new_v4().simple()),
            None,
            Permission::MembersManage,
        ),
        (
            Method::POST,
            format!("{base}/group-mappings"),
            Some(
                json!({"connection_id": Uuid::new_v4(), "idp_group": "readers",
                        "role": {"type": "built_in", "role": "viewer"}}),
            ),
            Permission::MembersManage,
        ),
        (
            Method::GET,
            format!("{base}/group-mappings"),
            None,
            Permission::MembersManage,
        ),
        (
            Method::DELETE,
            format!("{base}/group-mappings/{}", Uuid::new_v4()),
            None,
            Permission::MembersManage,
        ),
        (
            Method::POST,
            format!("{base}/identity-connections"),
            Some(json!({"name": format!("idp-{}", Uuid::new_v4()),
                        "issuer": format!("https://idp.example/{}", Uuid::new_v4()),
                        "audience": "windlass", "jwks_uri": "https://idp.example/keys"})),
            Permission::MembersManage,
        ),
        (
            Method::GET,
            format!("{base}/identity-connections"),
            None,
            Permission::MembersManage,
        ),
        (
            Method::DELETE,
            format!("{base}/identity-connections/{}", Uuid::new_v4()),
            None,
            Permission::MembersManage,
        ),
        (
            Method::GET,
            format!("{base}/api-tokens"),
            None,
            Permission::MembersManage,
        ),
        (
            Method::POST,
            format!("{base}/api-tokens"),
            Some(json!({"name": format!("ci-{}", Uuid::new_v4()),
                        "role": {"type": "custom", "name": "reader",
                                 "grants": [{"permission": "runs_read", "scope": {"kind": "all_clusters"}}]},
                        "expires_in_days": 30})),
            Permission::MembersManage,
        ),
        (
            Method::POST,
            format!("{base}/api-tokens/{}/revoke", Uuid::new_v4()),
            None,
            Permission::MembersManage,
        ),
        (
            Method::GET,
            format!("{base}/clusters"),
            None,
            Permission::ClustersRead,
        ),
        (
            Method::GET,
            format!("{base}/maintenance-schedules"),
            None,
            Permission::ClustersRead,
        ),
        (
            Method::POST,
            format!("{base}/clusters"),
            Some(
                json!({"name": format!("m{}", &Uuid::new_v4().simple().to_string()[..8]),
                        "cloud_account_id": account, "region": "westeurope",
                        "kubernetes_version": "1.33", "dry_run": true}),
            ),
            Permission::ClustersWrite,
        ),
        (
            Method::GET,
            format!("{base}/placements"),
            None,
            Permission::ClustersRead,
        ),
        (
            Method::POST,
            format!("{base}/placements"),
            Some(json!({"name": format!("m{}", &Uuid::new_v4().simple().to_string()[..8])})),
            Permission::ClustersWrite,
        ),
        (
            Method::GET,
            format!("{base}/projects"),
            None,
            Permission::ProjectsRead,
        ),
        (
            Method::POST,
            format!("{base}/projects"),
            Some(json!({"name": format!("m{}", &Uuid::new_v4().simple().to_string()[..8])})),
            Permission::ProjectsWrite,
        ),
        (
            Method::GET,
            format!("{base}/projects/{}/environments", Uuid::new_v4()),
            None,
            Permission::ProjectsRead,
        ),
        (
            Method::GET,
            format!("{base}/secrets"),
            None,
            Permission::ProjectsRead,
        ),
        (
            Method::POST,
            format!("{base}/secrets"),
            Some(json!({"name": "matrix/value", "value": "not-a-real-secret"})),
            Permission::SecretsWrite,
        ),
        // Environments that do not exist: allowed callers get 404, the others 403.
        (
            Method::GET,
            format!("{base}/environments/{}", Uuid::new_v4()),
            None,
            Permission::ProjectsRead,
        ),
        (
            Method::GET,
            format!("{base}/environments/{}/deployments", Uuid::new_v4()),
            None,
            Permission::ProjectsRead,
        ),
        (
            Method::POST,
            format!("{base}/environments/{}/deployments", Uuid::new_v4()),
            Some(json!({})),
            Permission::EnvironmentsDeploy,
        ),
        (
            Method::PUT,
            format!("{base}/environments/{}/services", Uuid::new_v4()),
            Some(json!([])),
            Permission::ProjectsWrite,
        ),
        (
            Method::POST,
            format!("{base}/environments/{}/webhook-secret", Uuid::new_v4()),
            None,
            Permission::ProjectsWrite,
        ),
    ];
    // A cluster that does not exist: allowed callers get 404, the others 403.
    let cluster = Uuid::new_v4();
    let on_cluster = Target::cluster(cluster);
    let cluster_path = format!("{base}/clusters/{cluster}");
    let cluster_routes = vec![
        (
            Method::GET,
            cluster_path.clone(),
            None,
            Permission::ClustersRead,
        ),
        (
            Method::GET,
            format!("{cluster_path}/blueprint"),
            None,
            Permission::ClustersRead,
        ),
        (
            Method::GET,
            format!("{cluster_path}/maintenance"),
            None,
            Permission::ClustersRead,
        ),
        (
            Method::DELETE,
            cluster_path.clone(),
            None,
            Permission::ClustersWrite,
        ),
        (
            Method::POST,
            format!("{cluster_path}/upgrade"),
            Some(json!({"kubernetes_version": "1.34"})),
            Permission::ClustersWrite,
        ),
        (
            Method::POST,
            format!("{cluster_path}/maintenance/pause"),
            Some(json!({"note": "matrix"})),
            Permission::ClustersWrite,
        ),
        (
            Method::POST,
            format!("{cluster_path}/maintenance/trigger"),
            None,
            Permission::ClustersWrite,
        ),
    ];
    // A new environment names its project, type and cluster: grants on any of them count.
    let cluster_for_env = Uuid::new_v4();
    let new_environment = (
        Method::POST,
        format!("{base}/projects/{project}/environments"),
        Some(json!({"name": "prod", "type": "production", "cluster_id": cluster_for_env})),
        Permission::ProjectsWrite,
        Target::environment(
            project,
            windlass_core::audit::Environment::Production,
            cluster_for_env,
        ),
    );
    organization_routes
        .into_iter()
        .map(|(m, p, b, permission)| (m, p, b, permission, Target::default()))
        .chain(std::iter::once(new_environment))
        .chain(
            cluster_routes
                .into_iter()
                .map(|(m, p, b, permission)| (m, p, b, permission, on_cluster)),
        )
        .collect()
}

fn every_permission_at(scope: Scope) -> Vec<Grant> {
    Permission::ALL
        .into_iter()
        .map(|permission| Grant {
            permission,
            scope: scope.clone(),
        })
        .collect()
}

#[tokio::test]
async fn each_role_gets_exactly_its_permissions_on_every_route() {
    let api = TestApi::start().await;
    let (org, account) = api.organization_with_azure_account().await;
    let project = api.project(org, "matrix").await;
    // As if its access setup had succeeded: the cluster routes then pass the ownership gate.
    api.mark_verified(org, account).await;
    let mut roles: Vec<(String, Role)> = BuiltInRole::ALL
        .into_iter()
        .map(|role| (format!("{role:?}"), Role::BuiltIn { role }))
        .collect();
    // Scoped custom roles: everything, but only on clusters (so the cluster routes and
    // none of the organisation-level ones) / on production environments.
    roles.push((
        "all-clusters".into(),
        Role::Custom {
            name: "all clusters".into(),
            grants: every_permission_at(Scope::AllClusters),
        },
    ));
    roles.push((
        "production-only".into(),
        Role::Custom {
            name: "production".into(),
            grants: every_permission_at(Scope::EnvironmentType {
                project_id: Some(project),
                environment: Environment::Production,
            }),
        },
    ));
    roles.push((
        "run-reader".into(),
        Role::Custom {
            name: "run reader".into(),
            grants: vec![Grant {
                permission: Permission::RunsRead,
                scope: Scope::Organization,
            }],
        },
    ));

    let mut denied = 0;
    for (name, role) in &roles {
        let subject = format!("member-{name}");
        api.store
            .bind_role(org, &pseudonymous_subject(&api.idp.issuer, &subject), role)
            .await
            .unwrap();
        let api = api.caller(api.idp.token(&subject, &[], 600));
        for (method, path, body, permission, target) in routes(org, account, project) {
            let expected = rbac::allows(std::slice::from_ref(role), permission, &target);
            let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
            let (status, problem) = api.send(method.clone(), &path, body).await;
            if expected {
                assert_ne!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{name} {method} {path}: {problem:#}"
                );
                assert_ne!(status, StatusCode::UNAUTHORIZED, "{name} {method} {path}");
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{name} {method} {path}: {problem:#}"
                );
                denied += 1;
            }
        }
    }
    assert!(denied > 20, "the matrix denies something: {denied}");

    // Roles also come from IdP groups, through one of the organisation's connections.
    let company_idp = windlass_test_support::OidcIssuerStandIn::start(0, "windlass-company")
        .await
        .unwrap();
    let connection = api
        .store
        .create_identity_connection(
            &windlass_core::identity_connections::NewIdentityConnection {
                organization_id: org,
                name: "company".into(),
                issuer: company_idp.issuer.clone(),
                audience: company_idp.audience.clone(),
                jwks_uri: company_idp.jwks_uri.clone(),
            },
        )
        .await
        .unwrap();
    api.store
        .map_group_to_role(
            org,
            connection.id,
            "auditors",
            &Role::BuiltIn {
                role: BuiltInRole::Admin,
            },
        )
        .await
        .unwrap();
    let auditor = api.caller(company_idp.token("someone", &["auditors"], 600));
    let (status, trail) = auditor
        .get(&format!(
            "/v1/organizations/{org}/audit?action=authz.denied&limit=1000"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{trail:#}");
    // Every refusal of a member is in the organisation's audit trail.
    assert_eq!(trail.as_array().unwrap().len(), denied, "{trail:#}");
    let stranger = api.caller(company_idp.token("stranger", &["other-group"], 600));
    assert_eq!(
        stranger
            .get(&format!("/v1/organizations/{org}/runs"))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // The same group from Windlass's own sign-in maps to nothing.
    let outsider = api.caller(api.idp.token("someone", &["auditors"], 600));
    assert_eq!(
        outsider
            .get(&format!("/v1/organizations/{org}/runs"))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn an_admin_issues_and_revokes_tokens_through_the_api() {
    let api = TestApi::start().await;
    let tester = api.caller(api.tester.clone());
    let (org, _) = api.organization_with_azure_account().await;
    let (status, issued) = tester.post(
            &format!("/v1/organizations/{org}/api-tokens"),
            json!({"name": "pipeline", "role": {"type": "built_in", "role": "dev_ops"}, "expires_in_days": 7}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued:#}");
    let secret = issued["secret"].as_str().unwrap().to_owned();
    let pipeline = api.caller(secret.clone());
    assert_eq!(
        pipeline
            .get(&format!("/v1/organizations/{org}/runs"))
            .await
            .0,
        StatusCode::OK
    );
    let revoke = format!(
        "/v1/organizations/{org}/api-tokens/{}/revoke",
        issued["id"].as_str().unwrap()
    );
    let (status, _) = tester.post(&revoke, Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        pipeline
            .get(&format!("/v1/organizations/{org}/runs"))
            .await
            .0,
        StatusCode::UNAUTHORIZED,
        "a revoked token stops working at once"
    );
    let (_, trail) = tester.get(&format!("/v1/organizations/{org}/audit")).await;
    let text = trail.to_string();
    assert!(text.contains("access.issue_api_token") && text.contains("access.revoke_api_token"));
    assert!(!text.contains(&secret), "the secret is never audited");
}

#[tokio::test]
async fn api_tokens_act_only_in_their_organization_and_with_their_role() {
    let api = TestApi::start().await;
    let (org, account) = api.organization_with_azure_account().await;
    let (other_org, _) = api.organization_with_azure_account().await;
    let (_, viewer_secret) = api
        .store
        .issue_api_token(
            org,
            "dashboard",
            &Role::BuiltIn {
                role: BuiltInRole::Viewer,
            },
            chrono::Duration::days(1),
        )
        .await
        .unwrap();
    let dashboard = api.caller(viewer_secret.to_string());
    assert_eq!(
        dashboard
            .get(&format!("/v1/organizations/{org}/runs"))
            .await
            .0,
        StatusCode::OK
    );
    let (status, _) = dashboard
        .post(
            &format!("/v1/organizations/{org}/runs"),
            setup_request(account),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a viewer token cannot start runs"
    );
    assert_eq!(
        dashboard
            .get(&format!("/v1/organizations/{other_org}/runs"))
            .await
            .0,
        StatusCode::FORBIDDEN,
        "a token is for its own organisation only"
    );
    // Tokens cannot create organisations: that takes a person.
    let (status, _) = dashboard
        .post("/v1/organizations", json!({"name": "by-a-token"}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// The scopes a grant can have in an organisation with one project and one cluster.
fn every_scope(project: Uuid, cluster: Uuid) -> Vec<Scope> {
    vec![
        Scope::Organization,
        Scope::AllClusters,
        Scope::Cluster { id: cluster },
        Scope::AllProjects,
        Scope::Project { id: project },
        Scope::EnvironmentType {
            project_id: Some(project),
            environment: Environment::Preview,
        },
    ]
}

/// Every permission held at every scope, handed out through every granting route at every
/// scope: allowed exactly when the granter's scope contains the one handed out, and what
/// the organisation's lists show afterwards is exactly what was allowed.
#[tokio::test]
async fn nobody_grants_a_permission_beyond_the_scope_they_hold_it_at() {
    let api = TestApi::start().await;
    let tester = api.caller(api.tester.clone());
    let (org, account) = api.organization_with_azure_account().await;
    let project = api.project(org, "ceiling").await;
    let cluster = api
        .cluster_hosting(org, account, "ceiling", &Environment::ALL)
        .await;
    let connection = api
        .store
        .create_identity_connection(
            &windlass_core::identity_connections::NewIdentityConnection {
                organization_id: org,
                name: "company".into(),
                issuer: "https://idp.example".into(),
                audience: "windlass".into(),
                jwks_uri: "https://idp.example/keys".into(),
            },
        )
        .await
        .unwrap();
    let scopes = every_scope(project, cluster);
    let (mut allowed, mut refused) = (0, 0);
    let mut expected_bindings = 0;
    for permission in Permission::ALL {
        if permission == Permission::MembersManage {
            continue; // every granter holds it organisation-wide, to reach the routes
        }
        for held in &scopes {
            let granter_role = role(&[
                (Permission::MembersManage, Scope::Organization),
                (permission, held.clone()),
            ]);
            let granter = api.caller_holding(org, &granter_role).await;
            for wanted in &scopes {
                let handed = json!({"type": "custom", "name": "handed",
                    "grants": [{"permission": permission, "scope": wanted}]});
                let may = held.contains(wanted);
                for (route, body) in [
                    (
                        "role-bindings",
                        json!({"subject": format!("user:{}", Uuid::new_v4().simple()),
                               "role": handed}),
                    ),
                    (
                        "group-mappings",
                        json!({"connection_id": connection.id,
                               "idp_group": format!("g-{}", Uuid::new_v4()), "role": handed}),
                    ),
                    (
                        "api-tokens",
                        json!({"name": format!("t-{}", Uuid::new_v4()), "role": handed,
                               "expires_in_days": 1}),
                    ),
                ] {
                    let (status, problem) = granter
                        .post(&format!("/v1/organizations/{org}/{route}"), body)
                        .await;
                    let context = format!("{permission:?} held at {held:?}, {route} at {wanted:?}");
                    if may {
                        assert_eq!(status, StatusCode::CREATED, "{context}: {problem:#}");
                        allowed += 1;
                        if route == "role-bindings" {
                            expected_bindings += 1;
                        }
                    } else {
                        assert_eq!(status, StatusCode::FORBIDDEN, "{context}: {problem:#}");
                        refused += 1;
                    }
                }
            }
        }
    }
    assert!(
        allowed > 100 && refused > 300,
        "{allowed} allowed, {refused} refused"
    );
    let (_, bindings) = tester
        .get(&format!("/v1/organizations/{org}/role-bindings?limit=1000"))
        .await;
    // The creator's admin binding plus exactly the allowed ones.
    assert_eq!(bindings.as_array().unwrap().len(), expected_bindings + 1);
    let (_, trail) = tester
        .get(&format!(
            "/v1/organizations/{org}/audit?action=authz.denied&limit=1000"
        ))
        .await;
    let ceilings = trail
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["details"]["reason"] == "grant_ceiling")
        .count();
    assert_eq!(ceilings, refused.min(1000), "every refusal is audited");
}

/// An admin of one organisation gets nothing from another: every route of the other's,
/// whatever the method, is 403; and the other's ids under its own organisation read as
/// not found.
#[tokio::test]
async fn an_admin_of_one_organization_reaches_nothing_of_another() {
    let api = TestApi::start().await;
    let tester = api.caller(api.tester.clone());
    let (victim, account) = api.organization_with_azure_account().await;
    let project = api.project(victim, "private").await;
    let cluster = api
        .cluster_hosting(victim, account, "private", &Environment::ALL)
        .await;
    // The attacker signs in with Windlass's own IdP, creates an organisation and is its admin.
    let attacker = api.caller(api.idp.token("mallory", &[], 600));
    let (status, own) = attacker
        .post(
            "/v1/organizations",
            json!({"name": format!("evil-{}", Uuid::new_v4())}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let own: Uuid = own["id"].as_str().unwrap().parse().unwrap();

    let mut checked = 0;
    for (method, path, body, _, _) in routes(victim, account, project) {
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let (status, problem) = attacker.send(method.clone(), &path, body).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {problem:#}"
        );
        checked += 1;
    }
    assert!(checked > 40, "{checked}");
    // The victim's objects named under the attacker's own organisation do not exist there.
    for path in [
        format!("/v1/organizations/{own}/clusters/{cluster}"),
        format!("/v1/organizations/{own}/clusters/{cluster}/blueprint"),
        format!("/v1/organizations/{own}/projects/{project}/environments"),
    ] {
        assert_eq!(attacker.get(&path).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, problem) = attacker
        .post(
            &format!("/v1/organizations/{own}/projects/{project}/environments"),
            json!({"name": "x", "type": "preview", "cluster_id": cluster}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem:#}");
    // And nothing of the attack is in the victim's trail but the refusals, under the
    // attacker's pseudonym.
    let (_, trail) = tester
        .get(&format!("/v1/organizations/{victim}/audit?limit=1000"))
        .await;
    assert!(
        trail
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["actor"] == pseudonymous_subject(&api.idp.issuer, "mallory"))
            .all(|e| e["result"] == "denied"),
        "{trail:#}"
    );
}
