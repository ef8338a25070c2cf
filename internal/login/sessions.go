package login

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// sessionIDBytes is the length of a session id: 256 random bits.
const sessionIDBytes = 32

// sessions is the web_sessions table. Only the SHA-256 of a session id is
// stored, and the person's token is sealed with AES-GCM, so the table alone
// opens no session and lends no GitHub access.
type sessions struct {
	pool *pgxpool.Pool
	seal []byte // AES-256 key
}

func (s sessions) create(ctx context.Context, who identity, token string, expires time.Time) ([]byte, error) {
	id := make([]byte, sessionIDBytes)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	sealed, err := s.sealToken(id, token)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(id)
	// Expired sessions go as new ones come: the table stays small without
	// a sweeper of its own.
	if _, err := s.pool.Exec(ctx, `DELETE FROM web_sessions WHERE expires_at < now()`); err != nil {
		return nil, fmt.Errorf("remove expired sessions: %w", err)
	}
	if _, err := s.pool.Exec(ctx, `
		INSERT INTO web_sessions (id_hash, user_id, login, token_sealed, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		sum[:], who.ID, who.Login, sealed, expires); err != nil {
		return nil, fmt.Errorf("store the session: %w", err)
	}
	return id, nil
}

// get returns the live session id names, or nil.
func (s sessions) get(ctx context.Context, id []byte, now time.Time) (*User, error) {
	sum := sha256.Sum256(id)
	var (
		u      User
		sealed []byte
	)
	err := s.pool.QueryRow(ctx, `
		SELECT user_id, login, token_sealed FROM web_sessions WHERE id_hash = $1 AND expires_at > $2`,
		sum[:], now).Scan(&u.ID, &u.Login, &sealed)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the session: %w", err)
	}
	if u.token, err = s.openToken(id, sealed); err != nil {
		return nil, nil // sealed under another master key: sign in again
	}
	u.sessionID = id
	return &u, nil
}

func (s sessions) delete(ctx context.Context, id []byte) error {
	sum := sha256.Sum256(id)
	_, err := s.pool.Exec(ctx, `DELETE FROM web_sessions WHERE id_hash = $1`, sum[:])
	return err
}

// sealToken encrypts token, bound to the session id (as additional data),
// so a sealed token moved to another row does not open.
func (s sessions) sealToken(id []byte, token string) ([]byte, error) {
	aead, err := s.aead()
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, []byte(token), id), nil
}

func (s sessions) openToken(id, sealed []byte) (string, error) {
	aead, err := s.aead()
	if err != nil {
		return "", err
	}
	if len(sealed) < aead.NonceSize() {
		return "", errors.New("sealed token too short")
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], id)
	if err != nil {
		return "", err
	}
	return string(plain), nil
}

func (s sessions) aead() (cipher.AEAD, error) {
	block, err := aes.NewCipher(s.seal)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
