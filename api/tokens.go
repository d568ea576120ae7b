package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// TokenPrefix starts every token that POST /api/tokens creates.
const TokenPrefix = "mmb_"

// DefaultTokenCacheTTL is how long a looked-up token stays cached in one
// process. A revoked token stops working in other processes within it.
const DefaultTokenCacheTTL = 5 * time.Second

// maxTokenNameLength bounds token names, which become audit actors.
const maxTokenNameLength = 100

// Token store errors.
var (
	// ErrUnknownToken means the token is not a bootstrap token and no
	// unrevoked row has its hash.
	ErrUnknownToken = errors.New("unknown or revoked token")
	// ErrTokenNameTaken means another token already has the name.
	ErrTokenNameTaken = errors.New("token name already in use")
	// ErrTokenNotFound means no token has the id.
	ErrTokenNotFound = errors.New("token not found")
)

// TokenInfo describes a stored token without its secret.
type TokenInfo struct {
	ID         string     `json:"id" db:"id"`
	Name       string     `json:"name" db:"name"`
	Role       Role       `json:"role" db:"role"`
	Policy     Policy     `json:"policy" db:"-"`
	CreatedAt  time.Time  `json:"createdAt" db:"created_at"`
	LastUsedAt *time.Time `json:"lastUsedAt" db:"last_used_at"`
	RevokedAt  *time.Time `json:"revokedAt" db:"revoked_at"`

	PolicyJSON []byte `json:"-" db:"policy"`
}

// TokenStore authenticates tokens: bootstrap tokens held in memory and
// tokens stored (as SHA-256 hashes) in the api_tokens table.
type TokenStore struct {
	db        *sqlx.DB
	bootstrap []bootstrapToken
	ttl       time.Duration
	now       func() time.Time

	mu    sync.Mutex
	cache map[[sha256.Size]byte]cachedToken
}

type bootstrapToken struct {
	secret    []byte
	principal Principal
}

type cachedToken struct {
	principal Principal
	id        string
	expires   time.Time
}

// NewTokenStore returns a store over db (which may be nil when only
// bootstrap tokens are used). operatorToken and workerToken, when not
// empty, authenticate as the tokens named "operator" and "worker". A ttl of
// 0 means DefaultTokenCacheTTL.
func NewTokenStore(db *sqlx.DB, operatorToken, workerToken string, ttl time.Duration) *TokenStore {
	if ttl == 0 {
		ttl = DefaultTokenCacheTTL
	}
	s := &TokenStore{db: db, ttl: ttl, now: time.Now, cache: map[[sha256.Size]byte]cachedToken{}}
	if operatorToken != "" {
		s.bootstrap = append(s.bootstrap, bootstrapToken{[]byte(operatorToken), Principal{Name: "operator", Role: RoleOperator}})
	}
	if workerToken != "" {
		s.bootstrap = append(s.bootstrap, bootstrapToken{[]byte(workerToken), Principal{Name: "worker", Role: RoleWorker}})
	}
	return s
}

// Authenticate returns the principal of token or ErrUnknownToken.
func (s *TokenStore) Authenticate(ctx context.Context, token string) (*Principal, error) {
	// Compare every bootstrap token in constant time, without an early exit,
	// so the time taken does not reveal which prefix matched.
	var match *Principal
	for i := range s.bootstrap {
		if subtle.ConstantTimeCompare([]byte(token), s.bootstrap[i].secret) == 1 {
			p := s.bootstrap[i].principal
			match = &p
		}
	}
	if match != nil {
		return match, nil
	}
	if s.db == nil || !strings.HasPrefix(token, TokenPrefix) {
		return nil, ErrUnknownToken
	}

	// Stored tokens are found by hash, so no secret is compared in Go.
	hash := sha256.Sum256([]byte(token))
	s.mu.Lock()
	entry, ok := s.cache[hash]
	s.mu.Unlock()
	if ok && s.now().Before(entry.expires) {
		p := entry.principal
		return &p, nil
	}

	var row TokenInfo
	err := s.db.GetContext(ctx, &row, `
		UPDATE api_tokens SET last_used_at = now()
		WHERE token_hash = $1 AND revoked_at IS NULL
		RETURNING id, name, role, policy, created_at, last_used_at, revoked_at`, hash[:])
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrUnknownToken
	}
	if err != nil {
		return nil, databaseError(fmt.Errorf("look up token: %w", err))
	}
	p := Principal{Name: row.Name, Role: row.Role}
	if err := json.Unmarshal(row.PolicyJSON, &p.Policy); err != nil {
		return nil, fmt.Errorf("decode policy of token %s: %w", row.Name, err)
	}
	s.mu.Lock()
	s.cache[hash] = cachedToken{principal: p, id: row.ID, expires: s.now().Add(s.ttl)}
	s.mu.Unlock()
	return &p, nil
}

// Create stores a new token and returns its description and the token in
// clear, which is never shown again.
func (s *TokenStore) Create(ctx context.Context, name string, role Role, policy Policy) (*TokenInfo, string, error) {
	if s.db == nil {
		return nil, "", errors.New("create token: no database configured")
	}
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return nil, "", fmt.Errorf("create token: read random bytes: %w", err)
	}
	token := TokenPrefix + base64.RawURLEncoding.EncodeToString(secret[:])
	hash := sha256.Sum256([]byte(token))
	if policy.AllowedTypes == nil {
		policy.AllowedTypes = []string{}
	}
	if policy.Capabilities == nil {
		policy.Capabilities = []string{}
	}
	policyJSON, err := json.Marshal(policy)
	if err != nil {
		return nil, "", fmt.Errorf("create token: encode policy: %w", err)
	}

	var info TokenInfo
	err = s.db.GetContext(ctx, &info, `
		INSERT INTO api_tokens (id, name, role, policy, token_hash)
		VALUES ($1, $2, $3, $4, $5)
		RETURNING id, name, role, policy, created_at, last_used_at, revoked_at`,
		uuid.NewString(), name, string(role), policyJSON, hash[:])
	var pqErr *pq.Error
	if errors.As(err, &pqErr) && pqErr.Code == "23505" && strings.Contains(pqErr.Constraint, "name") {
		return nil, "", ErrTokenNameTaken
	}
	if err != nil {
		return nil, "", databaseError(fmt.Errorf("create token %s: %w", name, err))
	}
	info.Policy = policy
	return &info, token, nil
}

// List returns every stored token, revoked ones included, oldest first.
func (s *TokenStore) List(ctx context.Context) ([]TokenInfo, error) {
	if s.db == nil {
		return []TokenInfo{}, nil
	}
	rows := []TokenInfo{}
	if err := s.db.SelectContext(ctx, &rows, `
		SELECT id, name, role, policy, created_at, last_used_at, revoked_at
		FROM api_tokens ORDER BY created_at, name`); err != nil {
		return nil, databaseError(fmt.Errorf("list tokens: %w", err))
	}
	for i := range rows {
		if err := json.Unmarshal(rows[i].PolicyJSON, &rows[i].Policy); err != nil {
			return nil, fmt.Errorf("decode policy of token %s: %w", rows[i].Name, err)
		}
	}
	return rows, nil
}

// Revoke marks a token revoked and drops it from this process's cache.
// Other processes stop accepting it within their cache TTL. Revoking a
// revoked token again succeeds and keeps the first revocation time.
func (s *TokenStore) Revoke(ctx context.Context, id string) (*TokenInfo, error) {
	if _, err := uuid.Parse(id); err != nil || s.db == nil {
		return nil, ErrTokenNotFound
	}
	var info TokenInfo
	err := s.db.GetContext(ctx, &info, `
		UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now())
		WHERE id = $1
		RETURNING id, name, role, policy, created_at, last_used_at, revoked_at`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrTokenNotFound
	}
	if err != nil {
		return nil, databaseError(fmt.Errorf("revoke token %s: %w", id, err))
	}
	if err := json.Unmarshal(info.PolicyJSON, &info.Policy); err != nil {
		return nil, fmt.Errorf("decode policy of token %s: %w", info.Name, err)
	}

	s.mu.Lock()
	for hash, entry := range s.cache {
		if entry.id == info.ID {
			delete(s.cache, hash)
		}
	}
	s.mu.Unlock()
	return &info, nil
}

// createTokenRequest is the body of POST /api/tokens.
type createTokenRequest struct {
	Name   *string `json:"name"`
	Role   *string `json:"role"`
	Policy *Policy `json:"policy"`
}

// createTokenResponse shows the token in clear, once.
type createTokenResponse struct {
	TokenInfo
	Token string `json:"token"`
}

func (s *Server) createToken(c *gin.Context) {
	var req createTokenRequest
	if err := decodeJSON(c, s.bodyLimit, &req); err != nil {
		abort(c, s.logger, err)
		return
	}
	if req.Name == nil || strings.TrimSpace(*req.Name) == "" {
		abort(c, s.logger, fieldError("name", "name is required: send a non-empty name of at most %d characters", maxTokenNameLength))
		return
	}
	name := strings.TrimSpace(*req.Name)
	if len([]rune(name)) > maxTokenNameLength {
		abort(c, s.logger, fieldError("name", "name has %d characters: send at most %d", len([]rune(name)), maxTokenNameLength))
		return
	}
	if name == "operator" || name == "worker" || name == AuthDisabledActor {
		abort(c, s.logger, fieldError("name", "name %q is reserved for the built-in tokens: choose another name", name))
		return
	}
	if req.Role == nil || !Role(*req.Role).Valid() {
		abort(c, s.logger, fieldError("role", "role must be operator, producer or worker"))
		return
	}
	role := Role(*req.Role)
	var policy Policy
	if req.Policy != nil {
		policy = *req.Policy
		if role != RoleWorker && (len(policy.AllowedTypes) > 0 || len(policy.Capabilities) > 0) {
			abort(c, s.logger, fieldError("policy", "a policy applies only to worker tokens: remove it or use role worker"))
			return
		}
	}

	info, token, err := s.tokens.Create(c.Request.Context(), name, role, policy)
	if errors.Is(err, ErrTokenNameTaken) {
		abort(c, s.logger, fieldError("name", "a token named %q exists: choose another name or revoke and rename it", name))
		return
	}
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	s.logger.InfoContext(c.Request.Context(), "token created", "actor", principal(c).Name, "token_name", info.Name, "role", string(info.Role))
	c.JSON(http.StatusCreated, createTokenResponse{TokenInfo: *info, Token: token})
}

func (s *Server) listTokens(c *gin.Context) {
	items, err := s.tokens.List(c.Request.Context())
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"items": items})
}

func (s *Server) revokeToken(c *gin.Context) {
	info, err := s.tokens.Revoke(c.Request.Context(), c.Param("id"))
	if errors.Is(err, ErrTokenNotFound) {
		abort(c, s.logger, newError(http.StatusNotFound, CodeNotFound, "", "no token has id %q: list tokens with GET /api/tokens", c.Param("id")))
		return
	}
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	s.logger.InfoContext(c.Request.Context(), "token revoked", "actor", principal(c).Name, "token_name", info.Name)
	c.JSON(http.StatusOK, info)
}
