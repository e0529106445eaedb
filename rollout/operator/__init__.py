"""launchbay in a cluster shared by teams: the `Model` resource and the leader-elected controller."""
