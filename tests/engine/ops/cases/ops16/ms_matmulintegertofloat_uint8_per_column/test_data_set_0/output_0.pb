ByJxÏŠVÂ9?ÄA˜JÀA$û´ÂõmôB¿?Ã‘)SCç¤ALÃvÞ¼C·†ÂÂ•b0BGÊ;Aå—„ÂŒ]C€’pÂ´Ð;BØ+@¯P/ÂPÈB€eÃãàÆB­o@8Y"ÃÐ¬‹C‚$ÃG„rBNÅ¤AÉ‰
ÃZUsC