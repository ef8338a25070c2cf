// Package migrations holds the bot's schema as goose SQL migrations, embedded
// in the binary so that `bot migrate up` and start-up need no files on disk.
package migrations

import "embed"

// FS holds the migrations, named NNNNN_description.sql.
//
//go:embed *.sql
var FS embed.FS
