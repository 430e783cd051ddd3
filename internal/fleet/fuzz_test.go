package fleet_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ociboot/ociboot/internal/fleet"
)

// FuzzReceive posts arbitrary batches: the fleet never panics, and keeps
// a batch only when it answers 204.
func FuzzReceive(f *testing.F) {
	f.Add(`{"boot":"b1","seq":1,"mono":1,"type":"stage_start","stage":"network"}` + "\n" + `{"boot":"b1","seq":2,"mono":2,"type":"pipeline_status","status":0}`)
	f.Add(`{"boot":"b1","seq":3,"type":"message"}` + "\n\n" + `{"boot":"../x","seq":1,"type":"m"}`)
	f.Add(`{"boot":"b","seq":18446744073709551615,"mono":-1e308,"type":"x","wall":"2026-01-01T00:00:00Z"}`)
	f.Fuzz(func(t *testing.T, body string) {
		fl, err := fleet.New(fleet.Options{})
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, "/v1/events", strings.NewReader(body))
		w := httptest.NewRecorder()
		fl.ServeHTTP(w, req)
		kept := 0
		for _, m := range fl.Machines() {
			for _, b := range m.Boots {
				kept += b.Events
			}
		}
		if w.Code != http.StatusNoContent && kept != 0 {
			t.Errorf("answered %d but kept %d events", w.Code, kept)
		}
		if w.Code == http.StatusNoContent && kept > strings.Count(body, "\n")+1 {
			t.Errorf("kept %d events of %d lines", kept, strings.Count(body, "\n")+1)
		}
	})
}
