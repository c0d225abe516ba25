
BYJ(GÂýBüW³ÂÚ¨hÁ˜Z€CªQaÂhÚ¹ÀTÜTAùÃB€X-A@hæB