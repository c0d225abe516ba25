BlossJ I½E;ׂא?
uedX	ך¿Þכפƒ7ּ?tסנ"6ה?