package api

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
)

// Role is the permission level of a token. docs/http-api.md lists the
// endpoints of each role.
type Role string

// Roles. An operator may call every endpoint.
const (
	RoleOperator Role = "operator"
	RoleProducer Role = "producer"
	RoleWorker   Role = "worker"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleOperator || r == RoleProducer || r == RoleWorker }

// Policy narrows what a worker token may claim. Empty lists mean no limit.
type Policy struct {
	AllowedTypes []string `json:"allowedTypes"`
	Capabilities []string `json:"capabilities"`
}

// Principal is the authenticated caller of a request.
type Principal struct {
	// Name is the token name, recorded as the actor in the audit trail.
	Name   string
	Role   Role
	Policy Policy
}

// AuthDisabledActor is the actor of every request when authentication is
// disabled.
const AuthDisabledActor = "local"

// WorkerTokenHeader carries a worker token as an alternative to
// Authorization: Bearer.
const WorkerTokenHeader = "X-MoonMind-Worker-Token"

const principalKey = "mmb.principal"

// authenticate resolves the caller's token into a Principal and stores it in
// the gin context. It never logs the token.
func (s *Server) authenticate(c *gin.Context) {
	if s.cfg.AuthDisabled {
		c.Set(principalKey, &Principal{Name: AuthDisabledActor, Role: RoleOperator})
		c.Next()
		return
	}

	token, fromWorkerHeader := bearerToken(c.Request)
	if token == "" {
		abort(c, s.logger, newError(http.StatusUnauthorized, CodeUnauthorized, "",
			"missing token: send Authorization: Bearer <token> (or %s for worker tokens)", WorkerTokenHeader))
		return
	}
	p, err := s.tokens.Authenticate(c.Request.Context(), token)
	if errors.Is(err, ErrUnknownToken) {
		abort(c, s.logger, newError(http.StatusUnauthorized, CodeUnauthorized, "", "unknown or revoked token: ask an operator for a valid token"))
		return
	}
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	if fromWorkerHeader && p.Role != RoleWorker {
		abort(c, s.logger, newError(http.StatusUnauthorized, CodeUnauthorized, "",
			"%s accepts only worker tokens: send a %s token as Authorization: Bearer <token>", WorkerTokenHeader, p.Role))
		return
	}
	c.Set(principalKey, p)
	c.Next()
}

// bearerToken returns the token of r and whether it came from the worker
// token header. Authorization wins when both are present.
func bearerToken(r *http.Request) (string, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(token), false
		}
		return "", false
	}
	return strings.TrimSpace(r.Header.Get(WorkerTokenHeader)), true
}

// allow returns middleware that lets operators and the given roles through
// and rejects every other role with 403 forbidden.
func (s *Server) allow(roles ...Role) gin.HandlerFunc {
	return func(c *gin.Context) {
		p := principal(c)
		if p.Role == RoleOperator {
			c.Next()
			return
		}
		for _, r := range roles {
			if p.Role == r {
				c.Next()
				return
			}
		}
		abort(c, s.logger, newError(http.StatusForbidden, CodeForbidden, "",
			"%s token may not call %s %s: use %s token", withArticle(string(p.Role)), c.Request.Method, c.FullPath(), roleChoice(roles)))
	}
}

// roleChoice lists operator and the given roles as a choice with its
// article, such as "an operator" or "an operator, producer or worker".
func roleChoice(roles []Role) string {
	names := []string{string(RoleOperator)}
	for _, r := range roles {
		if !slices.Contains(names, string(r)) {
			names = append(names, string(r))
		}
	}
	choice := names[len(names)-1]
	if len(names) > 1 {
		choice = strings.Join(names[:len(names)-1], ", ") + " or " + choice
	}
	return withArticle(choice)
}

// withArticle puts "a" or "an" before word, choosing by its first letter.
// Every role name starts with a letter whose sound matches its spelling.
func withArticle(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an " + word
	}
	return "a " + word
}

// principal returns the caller set by authenticate.
func principal(c *gin.Context) *Principal {
	if v, ok := c.Get(principalKey); ok {
		return v.(*Principal)
	}
	return &Principal{}
}
