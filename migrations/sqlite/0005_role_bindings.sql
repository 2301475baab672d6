-- Who may do what in an organisation (SQLite). Identical in meaning to migrations/postgres.
-- subject: the pseudonymous id of a person (user:<hash>); role: JSON of rbac::Role.
CREATE TABLE role_bindings (
    organization_id  TEXT NOT NULL REFERENCES organizations(id),
    subject          TEXT NOT NULL,
    role             TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    PRIMARY KEY (organization_id, subject, role)
);

-- IdP groups whose members get a role in the organisation.
CREATE TABLE group_role_mappings (
    organization_id  TEXT NOT NULL REFERENCES organizations(id),
    idp_group        TEXT NOT NULL,
    role             TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    PRIMARY KEY (organization_id, idp_group, role)
);
