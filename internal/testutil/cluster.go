package testutil

import (
	"context"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisCluster is a private Redis Cluster of redis-server processes on free
// loopback ports, each with its own data directory in the test's temporary
// directory.
type RedisCluster struct {
	// Nodes lists every server in the order given to redis-cli. With
	// replicas, redis-cli chooses which nodes become primaries.
	Nodes []*RedisServer
	// Client is a cluster client for all nodes, closed at cleanup.
	Client *redis.ClusterClient
}

// Addrs returns host:port of every node.
func (c *RedisCluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// StartRedisCluster starts three primaries without replicas and returns
// once every node reports cluster_state:ok. It skips the test when
// redis-server or redis-cli is not installed, and stops every node by its
// process id at cleanup.
func StartRedisCluster(t testing.TB) *RedisCluster {
	t.Helper()
	return StartRedisClusterWithReplicas(t, 0)
}

// StartRedisClusterWithReplicas starts three primaries with the given
// number of replicas each, for tests of a failover.
func StartRedisClusterWithReplicas(t testing.TB, replicas int) *RedisCluster {
	t.Helper()
	for _, tool := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("Redis Cluster tests need %s, which is not installed: %v", tool, err)
		}
	}
	if replicas < 0 {
		t.Fatalf("StartRedisClusterWithReplicas: replicas must not be negative, got %d", replicas)
	}

	const primaries = 3
	c := &RedisCluster{}
	for range primaries * (1 + replicas) {
		// The cluster bus needs a second port. The default, port + 10000,
		// can exceed 65535 for an ephemeral port, so it is chosen here.
		node := StartRedisServer(t,
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(FreePort(t)),
			"--cluster-node-timeout", "5000",
			"--appendonly", "no",
		)
		c.Nodes = append(c.Nodes, node)
	}

	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}

	// cluster_state:ok can come before every replica is attached, so each
	// node must also report the full set of primaries and replicas.
	for _, node := range c.Nodes {
		client := redis.NewClient(&redis.Options{Addr: node.Addr()})
		WaitFor(t, 30*time.Second, "cluster_state:ok and all roles on "+node.Addr(), func() bool {
			info, err := client.ClusterInfo(context.Background()).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				return false
			}
			nodes, err := client.ClusterNodes(context.Background()).Result()
			if err != nil {
				return false
			}
			p, r := CountClusterRoles(nodes)
			return p == primaries && r == primaries*replicas
		})
		_ = client.Close()
	}

	c.Client = redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { _ = c.Client.Close() })
	WaitFor(t, 30*time.Second, "the cluster client to reach every primary", func() bool {
		err := c.Client.ForEachMaster(context.Background(), func(ctx context.Context, shard *redis.Client) error {
			return shard.Ping(ctx).Err()
		})
		return err == nil
	})
	return c
}

// CountClusterRoles counts the primaries and replicas listed in the output
// of CLUSTER NODES. Nodes flagged as failed are not counted.
func CountClusterRoles(clusterNodes string) (primaries, replicas int) {
	for _, line := range strings.Split(strings.TrimSpace(clusterNodes), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 3 {
			continue
		}
		flags := strings.Split(fields[2], ",")
		if slices.Contains(flags, "fail") || slices.Contains(flags, "fail?") {
			continue
		}
		switch {
		case slices.Contains(flags, "master"):
			primaries++
		case slices.Contains(flags, "slave"):
			replicas++
		}
	}
	return primaries, replicas
}
