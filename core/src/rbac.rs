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
    SecretsWrite,
    RunsRead,
    RunsStart,
    RunsCancel,
    AuditRead,
}

impl Permission {
    pub const ALL: [Permission; 15] = [
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
        Self::SecretsWrite,
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
    Cluster { id: Uuid },
    AllProjects,
    Project { id: Uuid },
    EnvironmentType { environment: Environment },
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
            Scope::EnvironmentType { environment } => target.environment == Some(*environment),
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

impl Role {
    pub fn grants(&self) -> Vec<Grant> {
        match self {
            Role::BuiltIn { role } => role.grants(),
            Role::Custom { grants, .. } => grants.clone(),
        }
    }
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
            (SecretsWrite, true, false, true, false),
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
}
