package pairing

import (
	qrcode "github.com/skip2/go-qrcode"
)

// QR encodes s. Medium recovery: a code on a phone's screen photographed
// off a monitor loses a little.
func QR(s string) (*qrcode.QRCode, error) { return qrcode.New(s, qrcode.Medium) }

// Terminal draws s's QR code with half blocks, two modules a character, for
// a light-on-dark terminal (the console): dark modules are the terminal's
// background, light ones the text colour.
func Terminal(s string) (string, error) {
	q, err := QR(s)
	if err != nil {
		return "", err
	}
	return q.ToSmallString(false), nil
}

// PNG draws s's QR code as a PNG image, 8 pixels a module.
func PNG(s string) ([]byte, error) {
	q, err := QR(s)
	if err != nil {
		return nil, err
	}
	return q.PNG(-8)
}
