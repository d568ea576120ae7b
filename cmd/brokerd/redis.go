package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

type redisUniversal = redis.UniversalClient

// clusterStateReloadInterval bounds how long a cluster client keeps routing
// to a primary that failed over. go-redis v9.23.0 reloads the slot map at
// once only after a MOVED, ASK or READONLY reply. A refused connection to a
// dead primary does not start a reload, and the default interval is 60 s.
const clusterStateReloadInterval = 2 * time.Second

func newSingle(raw string) (redisUniversal, error) {
	opts, err := redis.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid BROKER_REDIS_URL: %w", err)
	}
	return redis.NewClient(opts), nil
}

func newFailover(raw string) (redisUniversal, error) {
	opts, err := redis.ParseFailoverURL(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid Sentinel BROKER_REDIS_URL: %w", err)
	}
	return redis.NewFailoverClient(opts), nil
}

func newClusterFromURL(raw string) (redisUniversal, error) {
	opts, err := redis.ParseClusterURL(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid cluster BROKER_REDIS_URL: %w", err)
	}
	if opts.ClusterStateReloadInterval == 0 {
		opts.ClusterStateReloadInterval = clusterStateReloadInterval
	}
	return redis.NewClusterClient(opts), nil
}

func newClusterFromList(raw string) (redisUniversal, error) {
	var addrs []string
	for _, a := range strings.Split(raw, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("invalid BROKER_REDIS_URL %q: list at least one host:port", raw)
	}
	return redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, ClusterStateReloadInterval: clusterStateReloadInterval}), nil
}
