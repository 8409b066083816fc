//! The fixture used by the `demo` command and most tests, with fixed ids and credentials.
//!
//! - alice ([`ALICE_ID`], "Alice Admin"): access token [`ALICE_TOKEN`], Basic auth
//!   [`ALICE_BASIC`]; a member of the demo group, space, harvester and cluster with every
//!   member privilege there, so she may invite anyone (with custom privileges too). No
//!   Onezone admin privileges.
//! - bob ([`BOB_ID`]): access token [`BOB_TOKEN`]; a member of nothing, no privileges. He can
//!   still create access tokens and (the registration policy being open) a Oneprovider
//!   registration token for himself.
//! - a Oneprovider ([`PROVIDER_ID`]): access token [`PROVIDER_TOKEN`]; owns the cluster
//!   [`CLUSTER_ID`] (the same id), so it may invite users and groups to it.
//! - the special cluster [`ONEZONE_CLUSTER_ID`], with no members.

use super::world::{Kind, World};

pub const DOMAIN: &str = "onezone.local";

pub const ALICE_ID: &str = "18afc0189cd9da6cd0ddb2bf793f1467";
pub const ALICE_NAME: &str = "Alice Admin";
pub const ALICE_TOKEN: &str = "MDAx74tdp0rAQL30MYuLWFMSqLsuXMHsSXd5AT5dMAzEfx1WZnTmYaQBpWhPFHqV";
/// Basic auth login (also her username) and password.
pub const ALICE_BASIC: (&str, &str) = ("alice", "password");

pub const BOB_ID: &str = "142fe536f5ab84e88799fff9f127ee16";
pub const BOB_NAME: &str = "Bob Plain";
pub const BOB_TOKEN: &str = "MDAxQFYmtGRTSGZGorrkyZnpc7uA9hL5mrgx0Cpu5bBtdM3fQY7vFbd6TVm3oSBq";

pub const PROVIDER_ID: &str = "ce11f42907072969d87a89437c0153ea";
pub const PROVIDER_NAME: &str = "Demo Oneprovider";
pub const PROVIDER_TOKEN: &str = "MDAxHw007YFaSzbLhix8g00OxrUWwbcSNB14AdwvR4kZFwQx9mNz56p1XbJLxzC1";
/// The Oneprovider's cluster: in Onezone a cluster has the id of the Oneprovider owning it.
pub const CLUSTER_ID: &str = PROVIDER_ID;
/// Onezone's own cluster, present in every world.
pub const ONEZONE_CLUSTER_ID: &str = "onezone";

pub const GROUP_ID: &str = "17c7de8de3aac2234b4a7c749ce87d4f";
pub const GROUP_NAME: &str = "Demo Group";
pub const SPACE_ID: &str = "b70da5ad3a45ed3cade0227b73260ab5";
pub const SPACE_NAME: &str = "Demo Space";
pub const HARVESTER_ID: &str = "a94b178b8a69dacb817231c7accfc53e";
pub const HARVESTER_NAME: &str = "Demo Harvester";

impl World {
    /// The demo world described in [this module](self).
    pub fn demo() -> World {
        let mut world = World::new(DOMAIN);
        world
            .add_user(ALICE_ID, ALICE_NAME)
            .user_access_token(ALICE_ID, ALICE_TOKEN)
            .user_basic_auth(ALICE_ID, ALICE_BASIC.0, ALICE_BASIC.1)
            .add_user(BOB_ID, BOB_NAME)
            .user_access_token(BOB_ID, BOB_TOKEN)
            .add_provider(PROVIDER_ID, PROVIDER_NAME, PROVIDER_TOKEN)
            .add_group(GROUP_ID, GROUP_NAME)
            .add_space(SPACE_ID, SPACE_NAME)
            .add_harvester(HARVESTER_ID, HARVESTER_NAME)
            .grant(GROUP_ID, ALICE_ID, Kind::Group.privileges())
            .grant(SPACE_ID, ALICE_ID, Kind::Space.privileges())
            .grant(HARVESTER_ID, ALICE_ID, Kind::Harvester.privileges())
            .grant(CLUSTER_ID, ALICE_ID, Kind::Cluster.privileges());
        world
    }
}
