package digits

import (
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	ds := mustLoad(t)
	tests := []struct {
		name string
		got  int
		want int
	}{
		{"rows", len(ds.Train()) + len(ds.Test()), NumRows},
		{"train", len(ds.Train()), 1198},
		{"test", len(ds.Test()), 599},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %d, want %d", tt.name, tt.got, tt.want)
		}
	}
	for _, part := range []struct {
		name string
		imgs []Image
	}{{"train", ds.Train()}, {"test", ds.Test()}} {
		var perClass [NumClasses]int
		for i, img := range part.imgs {
			perClass[img.Label]++
			for j, v := range img.Pixels {
				if v < 0 || v > MaxPixel || v != float64(int(v)) {
					t.Fatalf("%s image %d pixel %d = %v, want an integer in 0..16", part.name, i, j, v)
				}
			}
		}
		for c, n := range perClass {
			if n < 50 {
				t.Errorf("%s has %d images of digit %d, want at least 50", part.name, n, c)
			}
		}
	}
}

// TestSplitIsByRowIndex checks the split against the first rows of the
// CSV: row 0 (a 0) is the first test image, rows 1 and 2 (a 1 and a 2) the
// first training images, row 3 (a 3) the second test image.
func TestSplitIsByRowIndex(t *testing.T) {
	ds := mustLoad(t)
	row0 := [NumPixels]float64{0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8, 8, 0, 0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0}
	if ds.Test()[0].Pixels != row0 || ds.Test()[0].Label != 0 {
		t.Errorf("first test image is not CSV row 0")
	}
	for _, tt := range []struct {
		name string
		img  Image
		want int
	}{
		{"train[0]", ds.Train()[0], 1},
		{"train[1]", ds.Train()[1], 2},
		{"test[1]", ds.Test()[1], 3},
	} {
		if tt.img.Label != tt.want {
			t.Errorf("%s has label %d, want %d", tt.name, tt.img.Label, tt.want)
		}
	}
}

func TestParseRow(t *testing.T) {
	valid := strings.Repeat("0,", NumPixels) + "7"
	tests := []struct {
		name    string
		row     string
		wantErr string
	}{
		{"valid", valid, ""},
		{"too few fields", "1,2,3", "got 3 fields"},
		{"not a number", "x," + valid[2:], `pixel 0: "x"`},
		{"pixel too large", "17," + valid[2:], `pixel 0: "17"`},
		{"negative pixel", "-1," + valid[2:], `pixel 0: "-1"`},
		{"label too large", strings.Repeat("0,", NumPixels) + "10", `label "10"`},
		{"label not a number", strings.Repeat("0,", NumPixels) + "seven", `label "seven"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, err := parseRow(tt.row)
			if tt.wantErr == "" {
				if err != nil || img.Label != 7 {
					t.Fatalf("parseRow = %+v, %v; want label 7, no error", img.Label, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("parseRow error = %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseCSVReportsLine(t *testing.T) {
	_, err := parseCSV(strings.NewReader(strings.Repeat("0,", NumPixels) + "1\n\nbad\n"))
	if err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("parseCSV error = %v, want it to name line 3", err)
	}
}
