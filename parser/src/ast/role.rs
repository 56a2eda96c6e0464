//! Security roles: the one place their keywords and display names are written. The parser
//! checks role commands against [`Role::of`]; the runtime's permission matrix decides with
//! them.

use super::SecurableEntity;

/// A security role, by the keyword the role commands use (`.add database D viewers (...)`) and
/// role assignments store. The only place role names are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admins,
    Users,
    Viewers,
    UnrestrictedViewers,
    Ingestors,
    Monitors,
    AllDatabasesAdmins,
    AllDatabasesViewers,
    AllDatabasesMonitors,
}

impl Role {
    pub const ALL: [Role; 9] = [
        Role::Admins,
        Role::Users,
        Role::Viewers,
        Role::UnrestrictedViewers,
        Role::Ingestors,
        Role::Monitors,
        Role::AllDatabasesAdmins,
        Role::AllDatabasesViewers,
        Role::AllDatabasesMonitors,
    ];

    /// The command keyword, as stored in role assignments.
    pub fn keyword(self) -> &'static str {
        match self {
            Role::Admins => "admins",
            Role::Users => "users",
            Role::Viewers => "viewers",
            Role::UnrestrictedViewers => "unrestrictedviewers",
            Role::Ingestors => "ingestors",
            Role::Monitors => "monitors",
            Role::AllDatabasesAdmins => "alldatabasesadmins",
            Role::AllDatabasesViewers => "alldatabasesviewers",
            Role::AllDatabasesMonitors => "alldatabasesmonitors",
        }
    }

    /// Kusto's human-readable name (`.show ... principals`' `Role` column).
    pub fn display(self) -> &'static str {
        match self {
            Role::Admins => "Admin",
            Role::Users => "User",
            Role::Viewers => "Viewer",
            Role::UnrestrictedViewers => "UnrestrictedViewer",
            Role::Ingestors => "Ingestor",
            Role::Monitors => "Monitor",
            Role::AllDatabasesAdmins => "AllDatabasesAdmin",
            Role::AllDatabasesViewers => "AllDatabasesViewer",
            Role::AllDatabasesMonitors => "AllDatabasesMonitor",
        }
    }

    pub fn from_keyword(keyword: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.keyword().eq_ignore_ascii_case(keyword))
    }
}

impl Role {
    /// The roles an entity of this kind has (Kusto's role commands, spec 4.1).
    pub fn of(entity: &SecurableEntity) -> &'static [Role] {
        match entity {
            SecurableEntity::Cluster => &[Role::AllDatabasesAdmins, Role::AllDatabasesViewers, Role::AllDatabasesMonitors],
            SecurableEntity::Database(_) => {
                &[Role::Admins, Role::Users, Role::Viewers, Role::UnrestrictedViewers, Role::Ingestors, Role::Monitors]
            }
            SecurableEntity::Table(_) => &[Role::Admins, Role::Ingestors],
            SecurableEntity::Function(_) | SecurableEntity::MaterializedView(_) | SecurableEntity::ExternalTable(_) => {
                &[Role::Admins]
            }
        }
    }
}
