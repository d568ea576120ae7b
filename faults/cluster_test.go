package faults

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/moonmind/broker/internal/testutil"
)

// recoveryBound is how long brokerd may stay not ready after the cluster
// finished its failover. It is an allowance for a loaded CI machine, not a
// measured figure.
const recoveryBound = 20 * time.Second

// TestClusterPrimaryKilled runs brokerd on a private Redis Cluster of three
// primaries with one replica each and kills, with SIGKILL, the primary that
// holds the broker's hash slot while producers enqueue. The broker must
// report the outage (readyz 503), recover once the replica took over, and
// keep every acknowledged job that WAIT confirmed on the replica before the
// kill.
func TestClusterPrimaryKilled(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts six redis-server processes and waits for a failover")
	}
	const namespace = "faults"
	ctx := testContext(t, 4*time.Minute)
	started := time.Now()

	cluster := testutil.StartRedisClusterWithReplicas(t, 1)
	_, dsn := testutil.Postgres(t)
	operatorToken, workerToken := newToken("op"), newToken("wk")
	// brokerd builds a cluster client from a comma-separated address list.
	b := startBrokerd(t, "brokerd", brokerdConfig{
		RedisURL: strings.Join(cluster.Addrs(), ","), DatabaseURL: dsn, Namespace: namespace,
		OperatorToken: operatorToken, WorkerToken: workerToken,
	})
	op := newAPIClient(b.URL, operatorToken)

	// Every key of the deployment shares the hash tag {faults}, so one
	// primary holds all of them.
	slotKey := "{" + namespace + "}:pause"
	primary, err := cluster.Client.MasterForKey(ctx, slotKey)
	if err != nil {
		t.Fatalf("find the primary of %s: %v", slotKey, err)
	}
	var victim *testutil.RedisServer
	for _, node := range cluster.Nodes {
		if node.Addr() == primary.Options().Addr {
			victim = node
		}
	}
	if victim == nil {
		t.Fatalf("primary %s of %s is not one of the nodes %v", primary.Options().Addr, slotKey, cluster.Addrs())
	}

	load := startProducers(ctx, op, 2)
	load.waitCount(t, 100, time.Minute)

	// Jobs acknowledged before a write that WAIT confirmed on a replica
	// are on that replica too, because a replica applies the primary's
	// writes in order.
	confirmed := load.count()
	direct := redis.NewClient(&redis.Options{Addr: victim.Addr()})
	defer direct.Close()
	if err := direct.Set(ctx, "{"+namespace+"}:faults:marker", time.Now().String(), 0).Err(); err != nil {
		t.Fatalf("write the replication marker: %v", err)
	}
	waitStarted := time.Now()
	acked, err := direct.Wait(ctx, 1, 10*time.Second).Result()
	waitTook := time.Since(waitStarted)
	if err != nil || acked < 1 {
		t.Fatalf("WAIT 1 on primary %s: %d replicas acknowledged, %v", victim.Addr(), acked, err)
	}
	beforeKill := load.count()

	// The readiness poll starts before the kill, so a short outage cannot
	// slip between two polls.
	var saw503 atomic.Bool
	pollDone := make(chan struct{})
	pollCtx := testContext(t, 2*time.Minute)
	go func() {
		defer close(pollDone)
		for pollCtx.Err() == nil && !saw503.Load() {
			if readyStatus(b.URL) == http.StatusServiceUnavailable {
				saw503.Store(true)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()

	killedAt := time.Now()
	victim.Kill()
	testutil.WaitFor(t, time.Minute, "readyz to return 503 after the primary died", saw503.Load)
	<-pollDone

	// A surviving node reports the failover once the replica of the
	// killed primary was promoted and three primaries are up again.
	survivor := redis.NewClient(&redis.Options{Addr: otherNode(cluster, victim).Addr()})
	defer survivor.Close()
	testutil.WaitFor(t, 2*time.Minute, "a replica to take over the killed primary", func() bool {
		nodes, err := survivor.ClusterNodes(ctx).Result()
		if err != nil {
			return false
		}
		primaries, _ := testutil.CountClusterRoles(nodes)
		return primaries == 3 && nodeFailed(nodes, victim.Addr())
	})
	failedOver := time.Since(killedAt)

	// brokerd must follow the new primary soon after the failover,
	// not only when its client's periodic topology reload comes around.
	b.waitReady(t, recoveryBound)
	recovered := time.Since(killedAt)
	afterRecovery := load.count()
	load.waitCount(t, afterRecovery+100, time.Minute)
	failures := load.failures.Load()
	accepted := load.finish()

	lostUnconfirmed := 0
	for i, id := range accepted {
		_, status, err := op.getJob(ctx, id)
		switch {
		case err == nil:
		case i < confirmed:
			t.Errorf("job %s, acknowledged and confirmed on a replica by WAIT, is gone after the failover: status %d, %v", id, status, err)
		case i >= afterRecovery:
			t.Errorf("job %s, acknowledged after the failover, is gone: status %d, %v", id, status, err)
		default:
			lostUnconfirmed++
		}
	}
	if load.unavailable.Load() == 0 {
		t.Errorf("no enqueue returned 503 unavailable during the outage (%d failed requests)", failures)
	}
	t.Logf("%d jobs acknowledged: %d confirmed by WAIT before the kill, %d acknowledged unconfirmed before the kill, "+
		"%d of those lost (WAIT took %s); %d failed enqueue requests (%d with 503 unavailable); readyz 503 seen, failover after %s, ready again %s after the kill; total %s",
		len(accepted), confirmed, beforeKill-confirmed, lostUnconfirmed, waitTook.Round(time.Millisecond), failures, load.unavailable.Load(),
		failedOver.Round(time.Millisecond), recovered.Round(time.Millisecond), time.Since(started).Round(time.Millisecond))
}

// otherNode returns a node of the cluster other than n.
func otherNode(c *testutil.RedisCluster, n *testutil.RedisServer) *testutil.RedisServer {
	for _, node := range c.Nodes {
		if node != n {
			return node
		}
	}
	return nil
}

// nodeFailed reports whether the CLUSTER NODES output flags the node at
// addr as failed.
func nodeFailed(clusterNodes, addr string) bool {
	for _, line := range strings.Split(clusterNodes, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 3 || !strings.HasPrefix(fields[1], addr+"@") {
			continue
		}
		for _, flag := range strings.Split(fields[2], ",") {
			if flag == "fail" {
				return true
			}
		}
	}
	return false
}
