// Package lua embeds the broker's Redis Lua scripts. Each .lua file makes
// one atomic state change or one consistent read; its header lists KEYS,
// ARGV, the return value and the invariant it keeps.
package lua

import "embed"

// FS holds every script, by file name.
//
//go:embed *.lua
var FS embed.FS
