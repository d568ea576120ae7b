package testutil

import (
	"context"
	"testing"
)

func TestRedisClusterWithReplicas(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts six redis-server processes")
	}
	ctx := context.Background()
	c := StartRedisClusterWithReplicas(t, 1)
	if len(c.Nodes) != 6 {
		t.Fatalf("cluster has %d nodes, want 6", len(c.Nodes))
	}

	nodes, err := c.Client.ClusterNodes(ctx).Result()
	if err != nil {
		t.Fatalf("CLUSTER NODES: %v", err)
	}
	primaries, replicas := CountClusterRoles(nodes)
	if primaries != 3 || replicas != 3 {
		t.Errorf("cluster has %d primaries and %d replicas, want 3 and 3", primaries, replicas)
	}

	// Keys in several slots are reachable through the cluster client.
	for _, key := range []string{"{a}:k", "{b}:k", "{c}:k", "{d}:k"} {
		if err := c.Client.Set(ctx, key, "v", 0).Err(); err != nil {
			t.Errorf("SET %s: %v", key, err)
		}
	}
}
