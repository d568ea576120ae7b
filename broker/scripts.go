package broker

import (
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/moonmind/broker/lua"
)

var (
	scriptsMu sync.Mutex
	scripts   = map[string]*redis.Script{}
)

// script returns the embedded script lua/<name>.lua. Script.Run sends
// EVALSHA and falls back to EVAL when Redis replies NOSCRIPT, so a restarted
// or flushed Redis needs no reload step.
func script(name string) *redis.Script {
	scriptsMu.Lock()
	defer scriptsMu.Unlock()
	if s, ok := scripts[name]; ok {
		return s
	}
	src, err := lua.FS.ReadFile(name + ".lua")
	if err != nil {
		panic(fmt.Sprintf("broker: missing embedded script lua/%s.lua: %v", name, err))
	}
	s := redis.NewScript(string(src))
	scripts[name] = s
	return s
}
