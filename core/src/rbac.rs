//! Role-based access control: what a role allows, and where.
//!
//! Built-in roles (Admin, Billing, DevOps, Viewer) and custom roles are sets of grants; a
//! grant is a permission at a scope: the whole organisation, all clusters or one cluster,
//! all projects, one project, or every environment of one type (production, staging,
//! development, preview). A member's roles come from direct bindings and from their IdP
//! groups; the check is deny-by-default.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::audit::Environment;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    OrganizationRead,
    MembersManage,
    BillingRead,
    CloudAccountsRead,
    CloudAccountsWrite,
    ClustersRead,
    ClustersWrite,
    ProjectsRead,
    /// Create projects and environments, change what an environment runs.
    ProjectsWrite,
    EnvironmentsDeploy,
    /// Place environments on a cluster.
    ClustersUse,
    SecretsWrite,
    /// Name a secret in a service (its value reaches the service's pods).
    SecretsUse,
    RunsRead,
    RunsStart,
    RunsCancel,
    AuditRead,
}

impl Permission {
    pub const ALL: [Permission; 17] = [
        Self::OrganizationRead,
        Self::MembersManage,
        Self::BillingRead,
        Self::CloudAccountsRead,
        Self::CloudAccountsWrite,
        Self::ClustersRead,
        Self::ClustersWrite,
        Self::ProjectsRead,
        Self::ProjectsWrite,
        Self::EnvironmentsDeploy,
        Self::ClustersUse,
        Self::SecretsWrite,
        Self::SecretsUse,
        Self::RunsRead,
        Self::RunsStart,
        Self::RunsCancel,
        Self::AuditRead,
    ];

    fn is_read(self) -> bool {
        matches!(
            self,
            Self::OrganizationRead
                | Self::CloudAccountsRead
                | Self::ClustersRead
                | Self::ProjectsRead
                | Self::RunsRead
        )
    }
}

/// Where a grant applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scope {
    Organization,
    AllClusters,
    Cluster {
        id: Uuid,
    },
    AllProjects,
    Project {
        id: Uuid,
    },
    /// Every environment of one type in one project. The project is required: a grant on
    /// "all preview environments of the organisation" would reach every team's previews.
    /// Grants stored before projects were required read back without one and cover
    /// nothing (fail closed).
    EnvironmentType {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        project_id: Option<Uuid>,
        environment: Environment,
    },
}

/// What a request touches, for the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Target {
    pub cluster_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    pub environment: Option<Environment>,
}

impl Target {
    /// A request that touches one cluster.
    pub fn cluster(cluster_id: Uuid) -> Self {
        Self {
            cluster_id: Some(cluster_id),
            ..Self::default()
        }
    }
}

impl Target {
    /// A request that touches one environment: its project, its type and its cluster all
    /// count, so a grant on any of them covers it.
    pub fn environment(project_id: Uuid, environment: Environment, cluster_id: Uuid) -> Self {
        Self {
            cluster_id: Some(cluster_id),
            project_id: Some(project_id),
            environment: Some(environment),
        }
    }
}

impl Scope {
    fn covers(&self, target: &Target) -> bool {
        match self {
            Scope::Organization => true,
            Scope::AllClusters => target.cluster_id.is_some(),
            Scope::Cluster { id } => target.cluster_id == Some(*id),
            Scope::AllProjects => target.project_id.is_some(),
            Scope::Project { id } => target.project_id == Some(*id),
            Scope::EnvironmentType {
                project_id: Some(project_id),
                environment,
            } => target.project_id == Some(*project_id) && target.environment == Some(*environment),
            Scope::EnvironmentType {
                project_id: None, ..
            } => false,
        }
    }

    /// Whether everything `inner` reaches is reached by `self` too: the grant ceiling
    /// compares scopes this way, never by what exists today.
    pub fn contains(&self, inner: &Scope) -> bool {
        use Scope::*;
        match (self, inner) {
            (Organization, _) => true,
            (AllClusters, AllClusters | Cluster { .. }) => true,
            (Cluster { id: a }, Cluster { id: b }) => a == b,
            (
                AllProjects,
                AllProjects
                | Project { .. }
                | EnvironmentType {
                    project_id: Some(_),
                    ..
                },
            ) => true,
            (Project { id: a }, Project { id: b }) => a == b,
            (
                Project { id: a },
                EnvironmentType {
                    project_id: Some(b),
                    ..
                },
            ) => a == b,
            (
                EnvironmentType {
                    project_id: Some(a),
                    environment: x,
                },
                EnvironmentType {
                    project_id: Some(b),
                    environment: y,
                },
            ) => a == b && x == y,
            _ => false,
        }
    }

    /// The project a scope is confined to, if any (checked to be the organisation's).
    pub fn project(&self) -> Option<Uuid> {
        match self {
            Scope::Project { id } => Some(*id),
            Scope::EnvironmentType { project_id, .. } => *project_id,
            _ => None,
        }
    }

    /// The cluster a scope is confined to, if any (checked to be the organisation's).
    pub fn cluster(&self) -> Option<Uuid> {
        match self {
            Scope::Cluster { id } => Some(*id),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Grant {
    pub permission: Permission,
    pub scope: Scope,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BuiltInRole {
    /// Everything.
    Admin,
    /// Billing, and reading the organisation.
    Billing,
    /// Operates infrastructure and deployments; cannot manage members or read billing.
    DevOps,
    /// Reads, never changes; no audit log, no billing.
    Viewer,
}

impl BuiltInRole {
    pub const ALL: [BuiltInRole; 4] = [Self::Admin, Self::Billing, Self::DevOps, Self::Viewer];

    pub fn grants(self) -> Vec<Grant> {
        let at_org = |permission| Grant {
            permission,
            scope: Scope::Organization,
        };
        let permissions: Vec<Permission> = match self {
            Self::Admin => Permission::ALL.to_vec(),
            Self::Billing => vec![Permission::OrganizationRead, Permission::BillingRead],
            Self::DevOps => Permission::ALL
                .into_iter()
                .filter(|p| !matches!(p, Permission::MembersManage | Permission::BillingRead))
                .collect(),
            Self::Viewer => Permission::ALL
                .into_iter()
                .filter(|p| p.is_read())
                .collect(),
        };
        permissions.into_iter().map(at_org).collect()
    }
}

/// A role: built in, or custom with its own grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Role {
    BuiltIn { role: BuiltInRole },
    Custom { name: String, grants: Vec<Grant> },
}

/// A custom role's name: short and printable, so it reads in the audit trail.
pub const MAX_ROLE_NAME: usize = 64;
/// More grants than permissions x a few scopes is a mistake, not a role.
pub const MAX_GRANTS: usize = 64;

impl Role {
    pub fn grants(&self) -> Vec<Grant> {
        match self {
            Role::BuiltIn { role } => role.grants(),
            Role::Custom { grants, .. } => grants.clone(),
        }
    }

    /// A role as given by a caller: a custom role has a short name, 1 to 64 distinct
    /// grants, and environment-type grants name their project.
    pub fn validate(&self) -> Result<(), String> {
        let Role::Custom { name, grants } = self else {
            return Ok(());
        };
        let length = name.chars().count();
        if name.trim().is_empty() || length > MAX_ROLE_NAME || name.chars().any(char::is_control) {
            return Err(format!(
                "role.name: 1 to {MAX_ROLE_NAME} printable characters"
            ));
        }
        if grants.is_empty() || grants.len() > MAX_GRANTS {
            return Err(format!("role.grants: 1 to {MAX_GRANTS} grants"));
        }
        for (i, grant) in grants.iter().enumerate() {
            if grants[..i].contains(grant) {
                return Err(format!("role.grants[{i}]: the same grant twice"));
            }
            if let Scope::EnvironmentType {
                project_id: None, ..
            } = grant.scope
            {
                return Err(format!(
                    "role.grants[{i}].scope: an environment_type scope names its project_id"
                ));
            }
        }
        Ok(())
    }
}

/// The first grant of `role` that `holder` does not hold at the same scope or wider, if
/// any. Nobody hands out more than they have: a role binding, a group mapping or an API
/// token whose role fails this is refused.
pub fn exceeded_grant(holder: &[Role], role: &Role) -> Option<Grant> {
    let held: Vec<Grant> = holder.iter().flat_map(Role::grants).collect();
    role.grants().into_iter().find(|wanted| {
        !held
            .iter()
            .any(|h| h.permission == wanted.permission && h.scope.contains(&wanted.scope))
    })
}

/// Whether any of `roles` grants `permission` on `target`. Deny by default.
pub fn allows(roles: &[Role], permission: Permission, target: &Target) -> bool {
    roles
        .iter()
        .flat_map(Role::grants)
        .any(|grant| grant.permission == permission && grant.scope.covers(target))
}

/// Roles of a member: direct bindings plus those mapped from their IdP groups.
pub fn roles_of(
    direct: &[Role],
    groups: &[String],
    group_mappings: &[(String, Role)],
) -> Vec<Role> {
    let mut roles = direct.to_vec();
    roles.extend(
        group_mappings
            .iter()
            .filter(|(group, _)| groups.contains(group))
            .map(|(_, role)| role.clone()),
    );
    roles
}

#[cfg(test)]
mod tests {
    use super::*;
    use Permission::*;

    fn built_in(role: BuiltInRole) -> Vec<Role> {
        vec![Role::BuiltIn { role }]
    }

    #[test]
    fn built_in_roles_follow_the_matrix() {
        let org = Target::default();
        // (permission, admin, billing, devops, viewer)
        let matrix = [
            (OrganizationRead, true, true, true, true),
            (MembersManage, true, false, false, false),
            (BillingRead, true, true, false, false),
            (CloudAccountsRead, true, false, true, true),
            (CloudAccountsWrite, true, false, true, false),
            (ClustersRead, true, false, true, true),
            (ClustersWrite, true, false, true, false),
            (ProjectsRead, true, false, true, true),
            (ProjectsWrite, true, false, true, false),
            (EnvironmentsDeploy, true, false, true, false),
            (ClustersUse, true, false, true, false),
            (SecretsWrite, true, false, true, false),
            (SecretsUse, true, false, true, false),
            (RunsRead, true, false, true, true),
            (RunsStart, true, false, true, false),
            (RunsCancel, true, false, true, false),
            (AuditRead, true, false, true, false),
        ];
        assert_eq!(
            matrix.len(),
            Permission::ALL.len(),
            "every permission is in the matrix"
        );
        for (permission, admin, billing, devops, viewer) in matrix {
            for (role, expected) in [
                (BuiltInRole::Admin, admin),
                (BuiltInRole::Billing, billing),
                (BuiltInRole::DevOps, devops),
                (BuiltInRole::Viewer, viewer),
            ] {
                assert_eq!(
                    allows(&built_in(role), permission, &org),
                    expected,
                    "{role:?} {permission:?}"
                );
            }
        }
    }

    #[test]
    fn custom_roles_are_scoped_by_cluster_project_and_environment_type() {
        let cluster_a = Uuid::new_v4();
        let cluster_b = Uuid::new_v4();
        let project = Uuid::new_v4();
        let role = Role::Custom {
            name: "staging deployer".into(),
            grants: vec![
                Grant {
                    permission: ClustersWrite,
                    scope: Scope::Cluster { id: cluster_a },
                },
                Grant {
                    permission: EnvironmentsDeploy,
                    scope: Scope::EnvironmentType {
                        project_id: Some(project),
                        environment: Environment::Staging,
                    },
                },
                Grant {
                    permission: ProjectsRead,
                    scope: Scope::Project { id: project },
                },
            ],
        };
        let roles = [role];
        let on_cluster = |id| Target {
            cluster_id: Some(id),
            ..Target::default()
        };
        assert!(allows(&roles, ClustersWrite, &on_cluster(cluster_a)));
        assert!(!allows(&roles, ClustersWrite, &on_cluster(cluster_b)));
        assert!(
            !allows(&roles, ClustersWrite, &Target::default()),
            "not organisation-wide"
        );
        let env = |environment| Target {
            project_id: Some(project),
            environment: Some(environment),
            ..Target::default()
        };
        assert!(allows(
            &roles,
            EnvironmentsDeploy,
            &env(Environment::Staging)
        ));
        assert!(!allows(
            &roles,
            EnvironmentsDeploy,
            &env(Environment::Production)
        ));
        assert!(allows(&roles, ProjectsRead, &env(Environment::Production)));
        assert!(
            !allows(&roles, RunsStart, &env(Environment::Staging)),
            "deny by default"
        );
    }

    #[test]
    fn idp_groups_map_to_roles() {
        let mappings = vec![
            (
                "platform-admins".to_owned(),
                Role::BuiltIn {
                    role: BuiltInRole::Admin,
                },
            ),
            (
                "finance".to_owned(),
                Role::BuiltIn {
                    role: BuiltInRole::Billing,
                },
            ),
        ];
        let roles = roles_of(&[], &["finance".into()], &mappings);
        assert!(allows(&roles, BillingRead, &Target::default()));
        assert!(!allows(&roles, MembersManage, &Target::default()));
        assert!(roles_of(&[], &["unknown".into()], &mappings).is_empty());
    }

    fn custom(grants: Vec<Grant>) -> Role {
        Role::Custom {
            name: "custom".into(),
            grants,
        }
    }

    fn grant(permission: Permission, scope: Scope) -> Grant {
        Grant { permission, scope }
    }

    #[test]
    fn an_environment_type_grant_reaches_only_its_project() {
        let (project, other) = (Uuid::new_v4(), Uuid::new_v4());
        let previews = [custom(vec![grant(
            ProjectsWrite,
            Scope::EnvironmentType {
                project_id: Some(project),
                environment: Environment::Preview,
            },
        )])];
        let cluster = Uuid::new_v4();
        assert!(allows(
            &previews,
            ProjectsWrite,
            &Target::environment(project, Environment::Preview, cluster)
        ));
        assert!(!allows(
            &previews,
            ProjectsWrite,
            &Target::environment(other, Environment::Preview, cluster)
        ));
        // A grant stored before projects were required reaches nothing.
        let legacy: Role = serde_json::from_str(
            r#"{"type":"custom","name":"old","grants":[{"permission":"projects_write",
                "scope":{"kind":"environment_type","environment":"preview"}}]}"#,
        )
        .unwrap();
        assert!(!allows(
            std::slice::from_ref(&legacy),
            ProjectsWrite,
            &Target::environment(project, Environment::Preview, cluster)
        ));
        assert!(legacy.validate().is_err(), "and cannot be granted again");
    }

    #[test]
    fn nobody_grants_more_than_they_hold() {
        let (project, cluster) = (Uuid::new_v4(), Uuid::new_v4());
        let admin = [Role::BuiltIn {
            role: BuiltInRole::Admin,
        }];
        let members_only = [custom(vec![grant(MembersManage, Scope::Organization)])];
        let admin_role = Role::BuiltIn {
            role: BuiltInRole::Admin,
        };
        assert_eq!(exceeded_grant(&admin, &admin_role), None);
        let exceeded = exceeded_grant(&members_only, &admin_role).unwrap();
        assert_ne!(exceeded.permission, MembersManage);
        assert_eq!(
            exceeded_grant(
                &members_only,
                &custom(vec![grant(MembersManage, Scope::Organization)])
            ),
            None
        );
        // Narrower scopes may be handed out, wider or sideways ones may not.
        let project_lead = [custom(vec![grant(
            ProjectsWrite,
            Scope::Project { id: project },
        )])];
        let preview = Scope::EnvironmentType {
            project_id: Some(project),
            environment: Environment::Preview,
        };
        assert_eq!(
            exceeded_grant(&project_lead, &custom(vec![grant(ProjectsWrite, preview)])),
            None
        );
        for wider in [
            Scope::AllProjects,
            Scope::Organization,
            Scope::Cluster { id: cluster },
        ] {
            assert!(
                exceeded_grant(
                    &project_lead,
                    &custom(vec![grant(ProjectsWrite, wider.clone())])
                )
                .is_some(),
                "{wider:?}"
            );
        }
        let one_cluster = [custom(vec![grant(
            ClustersWrite,
            Scope::Cluster { id: cluster },
        )])];
        assert!(
            exceeded_grant(
                &one_cluster,
                &custom(vec![grant(ClustersWrite, Scope::AllClusters)])
            )
            .is_some()
        );
    }

    #[test]
    fn scopes_contain_what_they_reach() {
        let (p, q, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let env = |project| Scope::EnvironmentType {
            project_id: Some(project),
            environment: Environment::Staging,
        };
        let cases = [
            (Scope::Organization, env(p), true),
            (Scope::AllProjects, env(p), true),
            (Scope::Project { id: p }, env(p), true),
            (Scope::Project { id: p }, env(q), false),
            (env(p), Scope::Project { id: p }, false),
            (Scope::AllClusters, Scope::Cluster { id: c }, true),
            (Scope::Cluster { id: c }, Scope::AllClusters, false),
            (Scope::AllClusters, Scope::AllProjects, false),
            (Scope::AllProjects, Scope::Organization, false),
        ];
        for (outer, inner, expected) in cases {
            assert_eq!(outer.contains(&inner), expected, "{outer:?} ⊇ {inner:?}");
        }
    }

    #[test]
    fn custom_roles_are_short_distinct_and_name_their_projects() {
        let ok = custom(vec![grant(RunsRead, Scope::Organization)]);
        assert!(ok.validate().is_ok());
        let long = Role::Custom {
            name: "x".repeat(17_000),
            grants: vec![grant(RunsRead, Scope::Organization)],
        };
        assert!(long.validate().unwrap_err().contains("role.name"));
        assert!(custom(vec![]).validate().is_err());
        let twice = custom(vec![
            grant(RunsRead, Scope::Organization),
            grant(RunsRead, Scope::Organization),
        ]);
        assert!(twice.validate().is_err());
    }
}
